//! `validate` and `apply` on bad input: whatever the bytes, no panic, no hang, every error
//! names the file, the document (1-based) and the field, and `apply` writes nothing.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::cli_support::{Cli, assert_exit, labels, path_arg, release_yaml, scratch_dir};

/// Runs `switchyard validate -f PATH` (no AWS involved) with a deadline, so that a hang fails
/// the test instead of stalling the suite.
fn validate(path: &Path) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "-f", path_arg(path)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("switchyard starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("validate -f {} did not finish within 60 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Random text made of YAML's and JSON's punctuation, words, digits and a few non-ASCII
/// characters: closer to a document than uniform bytes, so the parser gets further.
fn random_text(rng: &mut fastrand::Rng) -> String {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ": ",
        ",",
        "-",
        "- ",
        "? ",
        "&a",
        "*a",
        "!!str",
        "|",
        ">",
        "'",
        "\"",
        "%YAML 1.2",
        "@",
        "#",
        "\n",
        "\n  ",
        "\n---\n",
        " ",
        "\t",
        "apiVersion",
        "switchyard.dev/v1",
        "kind",
        "Release",
        "metadata",
        "name",
        "spec",
        "web",
        "image",
        "containers",
        "null",
        "~",
        "true",
        "1e999",
        "0x1F",
        "é",
        "😀",
        "\u{feff}",
        "\\u0000",
    ];
    let pieces = rng.usize(0..200);
    (0..pieces)
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

#[test]
fn validate_and_apply_name_the_file_document_and_field_of_every_error_and_write_nothing() {
    let cli = Cli::start();
    let good = release_yaml("good-one", "1.0", &labels(&[("team", "a")]));
    cli.write("releases/good.yaml", &good);
    cli.write("releases/broken.yaml", "apiVersion: [unclosed\n");
    cli.write(
        "releases/unknown.yaml",
        &release_yaml("unknown", "1.0", &labels(&[])).replace("image:", "imagee:"),
    );
    // The second document lacks its deployment group.
    let missing = format!(
        "{}---\n{}",
        release_yaml("first", "1.0", &labels(&[])),
        release_yaml("second", "1.0", &labels(&[]))
            .replace("      deploymentGroup: second-prod\n", "")
    );
    cli.write("releases/missing.yaml", &missing);
    cli.write("releases/empty.yaml", "");
    cli.write("releases/comments.yml", "# nothing but a comment\n");
    let mut rng = fastrand::Rng::with_seed(4);
    let bytes: Vec<u8> = (0..512).map(|_| rng.u8(..)).collect();
    std::fs::write(cli.dir.path().join("releases/random.yaml"), &bytes).unwrap();
    cli.write(
        "releases/big.yaml",
        &format!("{good}# {}\n", "x".repeat(4 * 1024 * 1024)),
    );
    cli.write("releases/nested/broken.json", "{\"apiVersion\": ");
    cli.write("releases/notes.txt", "not a release document, and not read");
    let dir = cli.dir.path().join("releases");

    let output = validate(&dir);
    let (stdout, stderr) = assert_exit(&output, 1, "validate -f releases/");
    assert_eq!(stdout, "");
    let file = |name: &str| dir.join(name).display().to_string();
    for expected in [
        format!(
            "{}: document 1: <document>: unclosed bracket '['",
            file("broken.yaml")
        ),
        format!(
            "{}: document 1: spec.taskDefinition.containers.unknown.imagee: unknown field `imagee`",
            file("unknown.yaml")
        ),
        format!(
            "{}: document 2: spec.strategy.codeDeploy.deploymentGroup: is required",
            file("missing.yaml")
        ),
        format!(
            "{}: document 1: <document>: the file holds no release document",
            file("empty.yaml")
        ),
        format!(
            "{}: document 1: <document>: the file holds no release document",
            file("comments.yml")
        ),
        format!(
            "{}: document 1: <document>: not UTF-8 text",
            file("random.yaml")
        ),
        format!(
            "{}: document 1: <document>: the file is larger than 4194304 bytes (4 MiB)",
            file("big.yaml")
        ),
        format!(
            "{}: document 1: <document>: invalid JSON",
            file("nested/broken.json")
        ),
        "error: 8 error(s) in 9 file(s); nothing is valid until all are fixed".to_string(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("notes.txt"), "{stderr}");
    assert!(!stderr.contains("good.yaml"), "{stderr}");
    assert!(!stderr.contains("document 1: spec.strategy"), "{stderr}");

    // The same directory applied: the same errors, nothing written, the good release included.
    let output = cli.run(&["apply", "-f", path_arg(&dir)]);
    let (stdout, stderr) = assert_exit(&output, 1, "apply -f releases/");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("8 error(s) in 9 file(s); nothing was written"),
        "{stderr}"
    );
    assert!(cli.names().is_empty(), "nothing was written");

    // Alone, the good file is valid and applies.
    let good_file = dir.join("good.yaml");
    let output = validate(&good_file);
    let (stdout, _) = assert_exit(&output, 0, "validate -f good.yaml");
    assert_eq!(stdout, "1 document(s) in 1 file(s) valid\n");
    assert!(
        cli.ok(&["apply", "-f", path_arg(&good_file)])
            .contains("release/good-one created (generation 1)")
    );

    // A release defined in two files: both named; a missing path and an empty directory.
    let scratch = scratch_dir();
    let twice = scratch.path();
    std::fs::write(twice.join("a.yaml"), release_yaml("web", "1", &labels(&[]))).unwrap();
    std::fs::write(
        twice.join("b.yaml"),
        format!(
            "{}---\n{}",
            release_yaml("api", "1", &labels(&[])),
            release_yaml("web", "2", &labels(&[]))
        ),
    )
    .unwrap();
    let output = validate(twice);
    let (_, stderr) = assert_exit(&output, 1, "validate a release defined twice");
    assert!(
        stderr.contains(&format!(
            "{}: document 2: metadata.name: release \"web\" is also defined in {} (document 1)",
            twice.join("b.yaml").display(),
            twice.join("a.yaml").display()
        )),
        "{stderr}"
    );
    let output = validate(&twice.join("missing.yaml"));
    let (_, stderr) = assert_exit(&output, 1, "validate a missing file");
    assert!(
        stderr.contains("missing.yaml: no such file or directory"),
        "{stderr}"
    );
    let empty = scratch_dir();
    let output = cli.run(&["apply", "-f", path_arg(empty.path())]);
    let (_, stderr) = assert_exit(&output, 1, "apply an empty directory");
    assert!(
        stderr.contains("no *.yaml, *.yml or *.json file in"),
        "{stderr}"
    );
    assert_eq!(cli.names(), ["good-one"]);
}

#[test]
fn validate_never_panics_or_hangs_on_random_input() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let mut rng = fastrand::Rng::with_seed(20_251_122);
    let mut files = Vec::new();
    for i in 0..300 {
        let path = dir.join(format!("case-{i:03}.yaml"));
        if i % 3 == 0 {
            let len = rng.usize(0..2048);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            std::fs::write(&path, bytes).unwrap();
        } else {
            std::fs::write(&path, random_text(&mut rng)).unwrap();
        }
        files.push(path);
    }
    let started = Instant::now();
    let output = validate(dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Every file is named with a document number: none slips through as valid.
    for path in &files {
        assert!(
            stderr.contains(&format!("{}: document ", path.display())),
            "no error for {}:\n{:?}",
            path.display(),
            std::fs::read(path).unwrap()
        );
    }
    // A hang guard, not a speed claim (speed belongs in benchmarks; CI machines are shared).
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}
