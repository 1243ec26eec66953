//! The Debian package (`scripts/package.sh`, cargo-deb): built from the debug binary, its
//! contents and control data inspected with `dpkg-deb`, checked with `lintian`, and — as
//! root, where the package is not installed already — installed with `dpkg -i`: the user and
//! folders exist, nothing is enabled or started, the installed service transcribes a file as
//! its own user, the recipe it installs fine-tunes as the conffile's example says, a changed
//! conffile survives a reinstall, and purge removes the state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::long_form;

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package into `dir`; its path.
fn build_package(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run(Command::new("bash")
        .arg(root.join("scripts/package.sh"))
        .args(["--profile", "dev", "--fast", "-q", "-o"])
        .arg(dir)
        .current_dir(root));
    let debs: Vec<_> = files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

#[test]
fn the_package_installs_the_service_disabled_with_its_conffile() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());

    // Contents: mode, owner and path of what an operator relies on.
    let contents = output(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"))
            .to_string()
    };
    assert!(entry("/usr/bin/hotfolderd").starts_with("-rwxr-xr-x 0/0"));
    for path in [
        "/usr/lib/systemd/system/hotfolderd.service",
        "/etc/hotfolderd/hotfolderd.toml",
        "/usr/share/doc/hotfolderd/copyright",
        "/usr/share/doc/hotfolderd/README.md",
        "/usr/share/man/man1/hotfolderd.1.gz",
        "/usr/share/man/man1/hotfolderd-run.1.gz",
        "/usr/share/hotfolderd/models/ggml-silero-vad.bin",
        "/usr/share/hotfolderd/trainers/whisper_finetune.py",
        "/usr/share/hotfolderd/trainers/requirements.txt",
    ] {
        assert!(entry(path).starts_with("-rw-r--r-- 0/0"), "{}", entry(path));
    }
    let installer = entry("/usr/share/hotfolderd/trainers/install-env.sh");
    assert!(installer.starts_with("-rwxr-xr-x 0/0"), "{installer}");
    // Nothing under /etc but the configuration: no enablement symlinks in the package.
    let etc: Vec<_> = contents
        .lines()
        .filter(|l| l.contains(" ./etc/") && !l.starts_with('d'))
        .collect();
    assert_eq!(etc.len(), 1, "{etc:?}");

    // Control data: the conffile, the dependency on adduser, maintainer scripts that never
    // enable or start the unit on their own.
    let info = output(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("Package: hotfolderd"), "{info}");
    let depends = info.lines().find(|l| l.contains("Depends:")).unwrap();
    assert!(
        depends.contains("adduser") && depends.contains("libopus0"),
        "{depends}"
    );
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap();
    assert_eq!(read("conffiles").trim(), "/etc/hotfolderd/hotfolderd.toml");
    let postinst: String = read("postinst")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    for forbidden in [
        "deb-systemd-invoke start",
        "systemctl start",
        "systemctl enable",
    ] {
        assert!(!postinst.contains(forbidden), "postinst runs {forbidden}");
    }

    // lintian: no errors and no warnings (the one override is explained in the file).
    let lint = Command::new("lintian")
        .arg(&deb)
        .output()
        .expect("lintian (scripts/deps.sh installs it)");
    let report = String::from_utf8_lossy(&lint.stdout).into_owned();
    let problems: Vec<_> = report
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(problems.is_empty(), "lintian:\n{report}");
    assert!(lint.status.success(), "lintian: {}", lint.status);

    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "hotfolderd"])
        .output()
        .unwrap();
    if !is_root() || String::from_utf8_lossy(&installed.stdout).contains("installed") {
        eprintln!("not root, or hotfolderd installed here already: skipping dpkg -i");
        return;
    }
    install_run_and_purge(&deb);
}

fn install_run_and_purge(deb: &Path) {
    run(Command::new("dpkg").arg("-i").arg(deb));
    let purge = Purge;
    let user = output(Command::new("getent").args(["passwd", "hotfolderd"]));
    assert!(user.contains(":/var/lib/hotfolderd:"), "{user}");
    assert!(user.trim_end().ends_with("/usr/sbin/nologin"), "{user}");
    let owner = output(Command::new("stat").args(["-c", "%U:%G %a", "/var/lib/hotfolderd/inbox"]));
    assert_eq!(owner.trim(), "hotfolderd:hotfolderd 750");
    // Installed, not enabled, not started.
    // (systemctl reads the unit files offline when systemd is not PID 1, as here.)
    let enabled = Command::new("systemctl")
        .args(["is-enabled", "hotfolderd.service"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "disabled");
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/hotfolderd.service").exists());
    // Only the installed binary: other tests run their own daemons meanwhile.
    let running = Command::new("pgrep")
        .args(["-f", "^/usr/bin/hotfolderd"])
        .output()
        .unwrap();
    assert!(
        running.stdout.is_empty(),
        "a hotfolderd process runs after install"
    );

    // The installed binary, config and folders work as the service's user.
    // The model with its tokenizer beside it, as `hotfolderd model import-ct2` leaves them (a
    // run exports the served model for the trainer, and needs both).
    run(Command::new("cp")
        .arg(model("tiny.en"))
        .arg("/var/lib/hotfolderd/models/ggml-tiny.en.bin"));
    run(Command::new("cp")
        .arg(model("tiny.en").with_file_name("tokenizer-tiny.en.json"))
        .arg("/var/lib/hotfolderd/models/tokenizer-tiny.en.json"));
    let mut daemon = Daemon {
        child: Command::new("setpriv")
            .args(["--reuid=hotfolderd", "--regid=hotfolderd", "--init-groups"])
            .args(["/usr/bin/hotfolderd", "run"])
            // One thread: its 4 would spin against the other tests' whisper threads on a
            // 2-core machine (a 5-minute file then took over 20 minutes).
            .env("HOTFOLDERD_ASR_THREADS", "1")
            .args(["--config", "/etc/hotfolderd/hotfolderd.toml"])
            .spawn()
            .unwrap(),
    };
    // A long recording, with the VAD model the package installed and its configuration names.
    run(Command::new("install")
        .args(["-o", "hotfolderd", "-g", "hotfolderd", "-m", "0640"])
        .arg(&long_form::long_speech().wav)
        .arg("/var/lib/hotfolderd/inbox/pkg.wav"));
    wait_up_to(
        Duration::from_secs(20 * 60),
        "the installed service's transcript",
        || Path::new("/var/lib/hotfolderd/out/pkg.json").is_file(),
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read("/var/lib/hotfolderd/out/pkg.json").unwrap())
            .unwrap();
    assert_eq!(doc["vad"]["used"], true, "{}", doc["vad"]);
    assert_eq!(
        doc["vad"]["model"],
        "/usr/share/hotfolderd/models/ggml-silero-vad.bin"
    );
    let text = std::fs::read_to_string("/var/lib/hotfolderd/out/pkg.txt").unwrap();
    long_form::assert_text_keeps_every_sentence(&text, 0.15, "installed service, VAD");
    assert!(signal_daemon(&mut daemon, "TERM").success());

    trains_with_the_installed_recipe();

    // A changed conffile survives a reinstall of the same package.
    let conf = "/etc/hotfolderd/hotfolderd.toml";
    let changed = std::fs::read_to_string(conf).unwrap() + "# changed by the admin\n";
    std::fs::write(conf, &changed).unwrap();
    run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(deb));
    assert_eq!(std::fs::read_to_string(conf).unwrap(), changed);

    drop(purge);
    assert!(
        !Path::new("/var/lib/hotfolderd").exists(),
        "purge left the state"
    );
    assert!(!Path::new(conf).exists(), "purge left the conffile");
    assert!(!Path::new("/usr/bin/hotfolderd").exists());
}

/// The recipe the package installed, in the environment scripts/trainer-venv.sh made (the
/// package's own install-env.sh, from the clone): the installed service, configured as the
/// conffile's commented example says, runs it on a file it transcribed, starting from the
/// model it serves.
fn trains_with_the_installed_recipe() {
    let python = crate::hf_models::trainer_python();
    let reachable = Command::new("setpriv")
        .args(["--reuid=hotfolderd", "--regid=hotfolderd", "--init-groups"])
        .args(["test", "-x", &python])
        .status()
        .unwrap();
    // A Python under /root (pyenv, as on the CI machines) is out of the service user's
    // reach: then the installed daemon runs as root here, with the same installed recipe.
    let as_service_user = reachable.success();
    let conf = "/etc/hotfolderd/hotfolderd.toml";
    let original = std::fs::read_to_string(conf).unwrap();
    assert!(original.contains("/usr/share/hotfolderd/trainers/whisper_finetune.py"));
    std::fs::write(
        conf,
        format!(
            "{original}\n[[dataset]]\nname = \"main\"\nsources = [\"/var/lib/hotfolderd/inbox\"]\n\
             path = \"/var/lib/hotfolderd/datasets/main\"\ntrain_after_hours = 0.0005\n\
             min_segment_seconds = 0.5\neval_fraction = 0.0\npromote = \"never\"\n\
             [dataset.trainer]\ncommand = [{python:?}, \"/usr/share/hotfolderd/trainers/whisper_finetune.py\",\
             \"--max-steps\", \"1\", \"--batch-size\", \"1\"]\ntimeout = \"15m\"\n"
        ),
    )
    .unwrap();
    let mut command = if as_service_user {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=hotfolderd", "--regid=hotfolderd", "--init-groups"])
            .arg("/usr/bin/hotfolderd")
            .env("HOME", "/var/lib/hotfolderd");
        c
    } else {
        Command::new("/usr/bin/hotfolderd")
    };
    let mut daemon = Daemon {
        child: command
            .arg("run")
            .env("HOTFOLDERD_ASR_THREADS", "1")
            .args(["--config", conf])
            .spawn()
            .unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(
        dir.path(),
        "train",
        "The installed package trains on this sentence.",
        "en-us",
    );
    run(Command::new("install")
        .args(["-o", "hotfolderd", "-g", "hotfolderd", "-m", "0640"])
        .arg(&wav)
        .arg("/var/lib/hotfolderd/inbox/train.wav"));
    let record = || {
        files_under(Path::new("/var/lib/hotfolderd/datasets/main/runs"))
            .into_iter()
            .find(|p| p.ends_with("run.json"))
    };
    wait_up_to(Duration::from_secs(15 * 60), "a finished run", || {
        record().is_some()
    });
    assert!(signal_daemon(&mut daemon, "TERM").success());
    let folder = record().unwrap().parent().unwrap().to_path_buf();
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        run["state"],
        "succeeded",
        "{run}\n{}",
        std::fs::read_to_string(folder.join("train.log")).unwrap_or_default()
    );
    assert!(
        folder.join("output/final/model.safetensors").is_file(),
        "{run}"
    );
    assert!(
        run["base_model"]["path"].is_string(),
        "started from the served model: {run}"
    );
    std::fs::write(conf, original).unwrap();
}

/// Purges the package when the test ends, passed or not, so the machine is left as found.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "hotfolderd"])
            .status();
    }
}
