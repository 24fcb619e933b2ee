//! The HAL on a real machine (std): what a device process needs to run the
//! same device crates the scenarios run, outside the simulator.
