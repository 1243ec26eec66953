//! SIGHUP re-reads the configuration: a folder added is watched without a restart, a
//! folder removed is no longer read, a folder's changed setting applies, and a broken
//! configuration is refused while the running one keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn write_config(d: &Path, folders: &[&str]) {
    write_config_with(d, folders, "");
}

/// `extra`: more `[[watch]]` keys for every folder.
fn write_config_with(d: &Path, folders: &[&str], extra: &str) {
    let mut text = format!(
        "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n",
        d.join("state/journal.sqlite"),
        model("tiny.en")
    );
    for f in folders {
        std::fs::create_dir_all(d.join(f)).unwrap();
        text += &format!(
            "[[watch]]\npath = {:?}\noutput = {:?}\nstable_for = \"300ms\"\n{extra}\n",
            d.join(f),
            d.join(format!("out-{f}"))
        );
    }
    std::fs::write(d.join("hotfolderd.toml"), text).unwrap();
}

#[test]
fn sighup_adds_and_removes_folders_and_refuses_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let speech = speak(d, "s", "Reloading the configuration.", "en-us");
    write_config(d, &["a"]);
    let log = d.join("daemon.log");
    let mut daemon = start_daemon_with(
        &d.join("hotfolderd.toml"),
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    let drop_into = |folder: &str, name: &str| {
        std::fs::copy(&speech, d.join(folder).join(format!("{name}.wav"))).unwrap();
    };
    let done = |folder: &str, name: &str| d.join(format!("out-{folder}/{name}.json")).is_file();
    drop_into("a", "one");
    wait_until("a/one", || done("a", "one"));

    // A second folder, without a restart.
    write_config(d, &["a", "b"]);
    run(std::process::Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]));
    wait_until("the reload", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("configuration reloaded"))
    });
    drop_into("b", "two");
    wait_until("b/two", || done("b", "two"));

    // A broken file is refused; the folders keep working.
    std::fs::write(d.join("hotfolderd.toml"), "[journal\npath = ").unwrap();
    run(std::process::Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]));
    wait_until("the refusal", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("reload refused"))
    });
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
    drop_into("a", "three");
    drop_into("b", "four");
    wait_until("a/three and b/four", || {
        done("a", "three") && done("b", "four")
    });

    // Folder a removed: what lands there is left alone; b still works.
    write_config(d, &["b"]);
    run(std::process::Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]));
    wait_until("the second reload", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.matches("configuration reloaded").count() == 2)
    });
    drop_into("a", "five");
    drop_into("b", "six");
    wait_until("b/six", || done("b", "six"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!done("a", "five"), "a removed folder was still read");
    assert!(d.join("a/five.wav").is_file());

    // A changed setting of a running folder applies too: every speech file is over 1 KiB.
    write_config_with(d, &["b"], "max_file_size = \"1KiB\"");
    run(std::process::Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]));
    wait_until("the third reload", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.matches("configuration reloaded").count() == 3)
    });
    drop_into("b", "seven");
    wait_until("b/seven quarantined", || {
        d.join("b/failed/seven.wav.error.json").is_file()
    });
    assert!(!done("b", "seven"));
    assert!(signal_daemon(&mut daemon, "TERM").success());
}
