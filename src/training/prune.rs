//! Bounded disk for training: a dataset keeps its newest `keep_runs` run folders and the
//! files of its newest `keep_candidates` candidate models; older ones are removed, each
//! with an event in the journal (audit log, `hotfolderd history`). What a user may still
//! need stays: the serving model, the one `model rollback` would serve, the runs that made
//! those two, and an `s3://` dataset's run folder until it is in the bucket. A model whose file is removed stays in
//! the registry with its lineage, marked so that nothing tries to serve it.

use std::path::Path;
use std::sync::Mutex;

use crate::dataset::s3_sync::UPLOADED;
use crate::dataset::Dataset;
use crate::journal::{Journal, ModelRow, ModelState, RunState};
use crate::training::run::{partial_dir, run_dir};

/// What one pass removed.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    pub run_folders: usize,
    pub model_files: usize,
}

/// Removes what `d`'s limits no longer keep. `models_dir` is where hotfolderd keeps the
/// candidates it made: a model file anywhere else is the operator's and is never touched.
pub fn prune(d: &Dataset, journal: &Mutex<Journal>, models_dir: &Path) -> Result<Pruned, String> {
    Ok(Pruned {
        run_folders: prune_runs(d, journal)?,
        model_files: prune_models(d, journal, models_dir)?,
    })
}

fn lock(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

fn prune_runs(d: &Dataset, journal: &Mutex<Journal>) -> Result<usize, String> {
    if d.keep_runs == 0 {
        return Ok(0);
    }
    let (runs, protected) = {
        let j = lock(journal);
        let runs = j.runs(Some(&d.name)).map_err(|e| e.to_string())?;
        // The runs that made the serving model and the rollback target keep their folders
        // (the trained weights, the logs) whatever their age.
        let mut protected: Vec<String> = Vec::new();
        if let Ok(Some(m)) = j.serving_model() {
            protected.extend(m.lineage.run_id);
        }
        if let Ok(m) = j.model_rollback_target() {
            protected.extend(m.lineage.run_id);
        }
        (runs, protected)
    };
    // Newest first; a run that ended without publishing its folder (a failure before its
    // end was written) counts by its partial folder, which holds its train.log.
    let with_folders = runs
        .iter()
        .filter(|r| r.state != RunState::Running && !protected.contains(&r.id))
        .filter_map(|r| {
            [run_dir(d, &r.id), partial_dir(d, &r.id)]
                .into_iter()
                .find(|f| f.is_dir())
                .map(|f| (r, f))
        });
    let mut removed = 0;
    for (run, folder) in with_folders.skip(d.keep_runs) {
        if d.remote.is_some() && folder == run_dir(d, &run.id) && !folder.join(UPLOADED).exists() {
            continue; // Not in the bucket yet: the copy comes first.
        }
        std::fs::remove_dir_all(&folder)
            .map_err(|e| format!("cannot remove {}: {e}", folder.display()))?;
        let why = format!(
            "keep_runs = {}: removed {} (newer runs are kept)",
            d.keep_runs,
            folder.display()
        );
        lock(journal)
            .run_folder_removed(&run.id, &why)
            .map_err(|e| e.to_string())?;
        tracing::info!(run = %run.id, folder = %folder.display(), keep_runs = d.keep_runs, "old run folder removed");
        removed += 1;
    }
    Ok(removed)
}

fn prune_models(d: &Dataset, journal: &Mutex<Journal>, models_dir: &Path) -> Result<usize, String> {
    if d.keep_candidates == 0 {
        return Ok(0);
    }
    let (models, rollback) = {
        let j = lock(journal);
        let models = j.models().map_err(|e| e.to_string())?;
        // A first choice only: `model_mark_removed` checks again in its transaction.
        let rollback = j.model_rollback_target().ok().map(|m| m.id);
        (models, rollback)
    };
    let ours = |m: &ModelRow| {
        m.lineage.dataset.as_deref() == Some(d.name.as_str()) && m.path.starts_with(models_dir)
    };
    // Marked before and still on disk: a crash came between the mark and the delete.
    for m in models.iter().filter(|m| ours(m) && m.removed_at.is_some()) {
        remove_files(m, models_dir)?;
    }
    let mut candidates: Vec<&ModelRow> = models
        .iter()
        .filter(|m| {
            ours(m)
                && m.removed_at.is_none()
                && m.state != ModelState::Serving
                && Some(m.id) != rollback
        })
        .collect();
    candidates.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
    let mut removed = 0;
    for m in candidates.into_iter().skip(d.keep_candidates) {
        let why = format!(
            "keep_candidates = {}: removed {} (newer candidates of dataset {} are kept)",
            d.keep_candidates,
            m.path.display(),
            d.name
        );
        // The mark first: from then on nothing serves it, so its file may go.
        let marked = lock(journal)
            .model_mark_removed(m.id, &why)
            .map_err(|e| e.to_string())?;
        if !marked {
            continue;
        }
        remove_files(m, models_dir)?;
        tracing::info!(model = m.id, path = %m.path.display(), keep_candidates = d.keep_candidates, "old candidate model removed");
        removed += 1;
    }
    Ok(removed)
}

/// A model's file and its tokenizer (gone already is fine).
fn remove_files(m: &ModelRow, models_dir: &Path) -> Result<(), String> {
    let tokenizer = models_dir.join(format!("tokenizer-{}.json", m.sha256));
    for f in [&m.path, &tokenizer] {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", f.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Lineage;

    #[test]
    fn only_the_newest_runs_and_candidates_stay_and_what_serves_or_rolls_back_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d =
            crate::dataset::feed::test_dataset(dir.path(), "keep_runs = 2\nkeep_candidates = 1");
        let models_dir = dir.path().join("models");
        std::fs::create_dir_all(&models_dir).unwrap();
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        // Five finished runs; the oldest failed before publishing (a partial folder).
        for (i, id) in ["r1", "r2", "r3", "r4", "r5"].iter().enumerate() {
            lock(&journal).run_start(id, "d", 60.0).unwrap();
            let folder = if i == 0 {
                partial_dir(&d, id)
            } else {
                run_dir(&d, id)
            };
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("train.log"), "log").unwrap();
            lock(&journal)
                .run_end(id, RunState::Succeeded, "ok")
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The operator's model serves first; then four candidates of the dataset's runs.
        let operators = dir.path().join("tiny.bin");
        std::fs::write(&operators, "m").unwrap();
        lock(&journal)
            .models_start("aa", &operators.display().to_string())
            .unwrap();
        let mut ids = Vec::new();
        for (sha, run) in [("c1", "r2"), ("c2", "r3"), ("c3", "r4"), ("c4", "r5")] {
            let path = models_dir.join(format!("{sha}.bin"));
            std::fs::write(&path, sha).unwrap();
            std::fs::write(models_dir.join(format!("tokenizer-{sha}.json")), "{}").unwrap();
            let lineage = Lineage {
                run_id: Some(run.into()),
                dataset: Some("d".into()),
                ..Lineage::default()
            };
            let (id, _) = lock(&journal)
                .model_add(sha, &path.display().to_string(), &lineage, None)
                .unwrap();
            ids.push(id);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // c1 serves, then c2: c1 is what a rollback would serve.
        lock(&journal).model_promote(ids[0]).unwrap();
        lock(&journal).model_promote(ids[1]).unwrap();

        let pruned = prune(&d, &journal, &models_dir).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                run_folders: 1,
                model_files: 1
            }
        );
        // r5 and r4 are the newest; r3 made the serving model and r2 the rollback target.
        let left: Vec<bool> = ["r1", "r2", "r3", "r4", "r5"]
            .iter()
            .map(|id| run_dir(&d, id).is_dir() || partial_dir(&d, id).is_dir())
            .collect();
        assert_eq!(left, [false, true, true, true, true]);
        // c4 is the newest candidate; c3 goes; c2 serves and c1 is the rollback target.
        let exists = |sha: &str| models_dir.join(format!("{sha}.bin")).is_file();
        assert_eq!(
            ["c1", "c2", "c3", "c4"].map(exists),
            [true, true, false, true]
        );
        assert!(!models_dir.join("tokenizer-c3.json").exists());
        assert!(operators.is_file(), "the operator's file is never touched");
        let j = lock(&journal);
        let c3 = j
            .models()
            .unwrap()
            .into_iter()
            .find(|m| m.sha256 == "c3")
            .unwrap();
        assert!(c3.removed_at.is_some());
        drop(j);
        assert!(matches!(
            lock(&journal).model_promote(c3.id),
            Err(crate::journal::RegistryError::FileRemoved(_))
        ));
        let said: Vec<String> = lock(&journal)
            .training_events(None)
            .unwrap()
            .into_iter()
            .filter(|e| e.event.ends_with("removed"))
            .map(|e| e.event)
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        // A crash between a mark and its delete: the next pass deletes the file.
        std::fs::write(models_dir.join("c3.bin"), "c3").unwrap();
        assert_eq!(prune(&d, &journal, &models_dir).unwrap(), Pruned::default());
        assert!(!models_dir.join("c3.bin").exists());
    }

    #[test]
    fn an_s3_datasets_run_folder_stays_until_it_is_in_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = crate::dataset::feed::test_dataset(dir.path(), "keep_runs = 1");
        d.remote = Some(crate::dataset::feed::Remote {
            bucket: "b".into(),
            prefix: String::new(),
            force_path_style: true,
            box_id: "box".into(),
            lease_ttl: std::time::Duration::from_secs(300),
        });
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        for id in ["r1", "r2"] {
            lock(&journal).run_start(id, "d", 60.0).unwrap();
            std::fs::create_dir_all(run_dir(&d, id)).unwrap();
            lock(&journal)
                .run_end(id, RunState::Succeeded, "ok")
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let models = dir.path().join("models");
        assert_eq!(prune(&d, &journal, &models).unwrap().run_folders, 0);
        std::fs::write(run_dir(&d, "r1").join(UPLOADED), "").unwrap();
        assert_eq!(prune(&d, &journal, &models).unwrap().run_folders, 1);
        assert!(!run_dir(&d, "r1").exists() && run_dir(&d, "r2").is_dir());
    }
}
