//! Robot twins: the physical part (bodies, motors) and the processors that
//! answer their real protocols.

pub mod hand;
