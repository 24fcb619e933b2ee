//! Every YAML example in README.md and docs/ runs: a complete scenario must
//! load and pass, so a docs change that breaks an example fails the build.
//! A block that is only part of a scenario is marked by the line
//! `<!-- fragment -->` right before its opening fence, and is skipped.

use std::path::{Path, PathBuf};

use twinrig::suite;

/// The marker line before a fence that makes a YAML block a fragment.
const FRAGMENT: &str = "<!-- fragment -->";

/// A YAML block of a Markdown file: its first line (1-based) and text.
struct Example {
    line: usize,
    yaml: String,
    fragment: bool,
}

fn examples(markdown: &str) -> Vec<Example> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if fence == "```yaml" {
            let indent = lines[i].len() - fence.len();
            let fragment = i > 0 && lines[i - 1].trim() == FRAGMENT;
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim_start() != "```" {
                end += 1;
            }
            let yaml = lines[start..end]
                .iter()
                .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
                .collect::<Vec<_>>()
                .join("\n");
            out.push(Example {
                line: start + 1,
                yaml,
                fragment,
            });
            i = end;
        }
        i += 1;
    }
    out
}

/// Runs every complete example of `markdown` (named `file` in messages);
/// returns one line per example that did not load or did not pass, and how
/// many complete examples there were.
fn check(file: &Path, markdown: &str) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut complete = 0;
    for e in examples(markdown).into_iter().filter(|e| !e.fragment) {
        complete += 1;
        let at = format!("{}:{}", file.display(), e.line);
        let loaded = match suite::parse(e.yaml, Path::new(&at)) {
            Ok(l) => l,
            Err(err) => {
                failures.push(format!(
                    "{at}: does not load (mark it `{FRAGMENT}` if it is a fragment): {}",
                    err.render_plain()
                ));
                continue;
            }
        };
        let outcome = suite::run(&loaded, |_| {});
        if !outcome.passed() {
            let why: Vec<String> = outcome
                .failure
                .iter()
                .cloned()
                .chain(
                    outcome
                        .assertions
                        .iter()
                        .filter(|a| !a.passed)
                        .map(|a| format!("step {}: {}: {}", a.step, a.description, a.detail)),
                )
                .collect();
            failures.push(format!("{at}: fails: {}", why.join("; ")));
        }
    }
    (failures, complete)
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_complete_example_in_the_docs_runs_green() {
    let mut failures = Vec::new();
    let mut complete = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let (f, n) = check(&file, &text);
        failures.extend(f);
        complete += n;
    }
    assert!(
        complete >= 2,
        "the README and SCENARIOS.md each show a complete scenario"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_example_fails_the_check_with_its_file_and_line() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let first = examples(&readme)
        .into_iter()
        .find(|e| !e.fragment)
        .expect("the README has a complete example");
    // The same example, waiting for text that never comes back.
    let broken = format!(
        "# A copy\n\n```yaml\n{}\n```\n",
        first
            .yaml
            .replacen("text: \"hello rig\"", "text: \"hello rug\"", 1)
    );
    assert_ne!(
        broken.trim(),
        first.yaml.trim(),
        "the example waits for \"hello rig\""
    );
    let (failures, complete) = check(Path::new("broken.md"), &broken);
    assert_eq!(complete, 1);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("broken.md:4: fails:")
            && failures[0].contains("no matching message on twinrig/echo/echo-1/rx"),
        "{failures:?}"
    );
}

#[test]
fn fragments_are_skipped_and_indented_blocks_are_found() {
    let md =
        "text\n<!-- fragment -->\n```yaml\n- delay: 1s\n```\n- item\n  ```yaml\n  name: x\n  ```\n";
    let found = examples(md);
    assert_eq!(found.len(), 2);
    assert!(found[0].fragment);
    assert_eq!(found[0].yaml, "- delay: 1s");
    assert!(!found[1].fragment);
    assert_eq!(found[1].yaml, "name: x");
    assert_eq!(found[1].line, 8);
}
