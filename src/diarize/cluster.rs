//! Who is who: speaker embeddings grouped by agglomerative clustering (average linkage on
//! cosine similarity), as pyannote and 3D-Speaker do for a file's windows. The number of
//! speakers comes from where merging stops being convincing (`threshold`), kept within
//! `min_speakers`/`max_speakers`, or is given (`num_speakers`).
//!
//! Cost is bounded whatever the file's length: at most [`MAX_CLUSTERED`] embeddings are
//! clustered (evenly picked), and every other one joins the cluster whose centroid it is
//! nearest.

/// The most embeddings clustered pairwise (the merge loop is cubic in this).
pub const MAX_CLUSTERED: usize = 800;

/// How many speakers there may be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeakerCount {
    /// Exactly this many (`num_speakers`).
    pub exactly: Option<usize>,
    pub min: Option<usize>,
    pub max: Option<usize>,
}

/// Voice prints read by index: in memory, or spooled to disk for a long file.
pub trait Embeddings {
    fn len(&self) -> usize;
    fn get(&mut self, i: usize) -> std::io::Result<Vec<f32>>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Embeddings for &[Vec<f32>] {
    fn len(&self) -> usize {
        <[Vec<f32>]>::len(self)
    }

    fn get(&mut self, i: usize) -> std::io::Result<Vec<f32>> {
        <[Vec<f32>]>::get(self, i)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("no embedding {i}")))
    }
}

/// The cluster of each embedding, numbered 0, 1, … in order of first appearance.
/// `threshold`: the cosine similarity below which two groups are different speakers.
pub fn cluster(embeddings: &[Vec<f32>], threshold: f32, count: SpeakerCount) -> Vec<usize> {
    let mut source = embeddings;
    // Reading from memory cannot fail.
    cluster_from(&mut source, threshold, count).unwrap_or_default()
}

/// As [`cluster`], reading each embedding at most twice and holding at most
/// [`MAX_CLUSTERED`] of them at once; also gives each cluster's centroid (unit length).
pub fn cluster_from(
    embeddings: &mut impl Embeddings,
    threshold: f32,
    count: SpeakerCount,
) -> std::io::Result<Vec<usize>> {
    Ok(cluster_with_centroids(embeddings, threshold, count)?.0)
}

/// The labels and, for each label, the centroid of its embeddings (unit length).
pub fn cluster_with_centroids(
    embeddings: &mut impl Embeddings,
    threshold: f32,
    count: SpeakerCount,
) -> std::io::Result<(Vec<usize>, Vec<Vec<f32>>)> {
    let n = embeddings.len();
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let step = n.div_ceil(MAX_CLUSTERED).max(1);
    let picked: Vec<Vec<f32>> = (0..n)
        .step_by(step)
        .map(|i| embeddings.get(i).map(|e| normalized(&e)))
        .collect::<Result<_, _>>()?;
    let picked_labels = agglomerate(&picked.iter().collect::<Vec<_>>(), threshold, count);
    let k = picked_labels.iter().max().map_or(0, |m| m + 1);
    // Centroids of the clustered ones; every embedding goes to its nearest.
    let dim = picked[0].len();
    let mut sums = vec![vec![0f32; dim]; k];
    for (e, &l) in picked.iter().zip(&picked_labels) {
        for (c, v) in sums[l].iter_mut().zip(e) {
            *c += v;
        }
    }
    let centroids: Vec<Vec<f32>> = sums.iter().map(|c| normalized(c)).collect();
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let e = normalized(&embeddings.get(i)?);
        labels.push(
            (0..k)
                .max_by(|&a, &b| dot(&e, &centroids[a]).total_cmp(&dot(&e, &centroids[b])))
                .unwrap_or(0),
        );
    }
    // Numbered by first appearance, the centroids with them.
    let mut order: Vec<usize> = Vec::new();
    for &l in &labels {
        if !order.contains(&l) {
            order.push(l);
        }
    }
    let labels = labels
        .iter()
        .map(|l| order.iter().position(|o| o == l).unwrap_or(0))
        .collect();
    let centroids = order.iter().map(|&o| centroids[o].clone()).collect();
    Ok((labels, centroids))
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(&normalized(a), &normalized(b))
}

/// Average-linkage agglomeration of unit vectors: the label of each.
fn agglomerate(unit: &[&Vec<f32>], threshold: f32, count: SpeakerCount) -> Vec<usize> {
    let n = unit.len();
    // Similarity between live clusters (average over their members' pairs), and sizes.
    let mut sim: Vec<Vec<f32>> = (0..n)
        .map(|i| (0..n).map(|j| dot(unit[i], unit[j])).collect())
        .collect();
    let mut size = vec![1usize; n];
    let mut live: Vec<bool> = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let mut clusters = n;
    let lowest = count.exactly.or(count.min).unwrap_or(1).clamp(1, n);
    let highest = count.exactly.or(count.max).unwrap_or(n).clamp(lowest, n);
    while clusters > lowest {
        let mut best: Option<(usize, usize, f32)> = None;
        for i in (0..n).filter(|&i| live[i]) {
            for j in (i + 1..n).filter(|&j| live[j]) {
                if best.is_none_or(|b| sim[i][j] > b.2) {
                    best = Some((i, j, sim[i][j]));
                }
            }
        }
        let Some((a, b, s)) = best else { break };
        // Stop where the closest two groups are different speakers, unless there are still
        // more than allowed.
        if s < threshold && clusters <= highest {
            break;
        }
        // Lance–Williams update for average linkage: b joins a.
        for k in (0..n).filter(|&k| live[k] && k != a && k != b) {
            let merged = (sim[a][k] * size[a] as f32 + sim[b][k] * size[b] as f32)
                / (size[a] + size[b]) as f32;
            sim[a][k] = merged;
            sim[k][a] = merged;
        }
        size[a] += size[b];
        live[b] = false;
        parent[b] = a;
        clusters -= 1;
    }
    let root = |mut i: usize| {
        while parent[i] != i {
            i = parent[i];
        }
        i
    };
    first_appearance_order(&(0..n).map(root).collect::<Vec<_>>())
}

/// Renumbers labels 0, 1, … in the order they first appear.
fn first_appearance_order(labels: &[usize]) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    labels
        .iter()
        .map(|l| match seen.iter().position(|s| s == l) {
            Some(p) => p,
            None => {
                seen.push(*l);
                seen.len() - 1
            }
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `v` scaled to unit length (a zero vector stays zero).
pub(super) fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` noisy copies of each direction in `voices`, interleaved as turns would be.
    fn voices(voices: &[[f32; 3]], turns: &[usize], n: usize) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for (t, &v) in turns.iter().enumerate() {
            for i in 0..n {
                let wobble = ((t * n + i) as f32 * 0.37).sin() * 0.08;
                out.push(voices[v].iter().map(|x| x + wobble).collect());
            }
        }
        out
    }

    const THREE: [[f32; 3]; 3] = [[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.1, 0.0, 1.0]];

    #[test]
    fn distinct_voices_are_found_and_numbered_in_order_of_appearance() {
        let e = voices(&THREE, &[1, 0, 1, 2, 0], 4);
        let labels = cluster(&e, 0.5, SpeakerCount::default());
        let turn_labels: Vec<usize> = labels.chunks(4).map(|c| c[0]).collect();
        assert_eq!(turn_labels, [0, 1, 0, 2, 1]);
        assert!(labels.chunks(4).all(|c| c.iter().all(|l| *l == c[0])));
    }

    #[test]
    fn counts_given_are_kept() {
        let e = voices(&THREE, &[0, 1, 2], 3);
        let two = SpeakerCount {
            max: Some(2),
            ..SpeakerCount::default()
        };
        assert_eq!(cluster(&e, 0.5, two).iter().max(), Some(&1));
        let four = SpeakerCount {
            exactly: Some(4),
            ..SpeakerCount::default()
        };
        assert_eq!(cluster(&e, 0.5, four).iter().max(), Some(&3));
        // One voice is one speaker unless more are required.
        let one = voices(&THREE, &[2, 2], 5);
        assert_eq!(
            cluster(&one, 0.5, SpeakerCount::default()).iter().max(),
            Some(&0)
        );
        let at_least_two = SpeakerCount {
            min: Some(2),
            ..SpeakerCount::default()
        };
        assert_eq!(cluster(&one, 0.5, at_least_two).iter().max(), Some(&1));
    }

    #[test]
    fn a_long_file_is_clustered_within_the_bound_and_every_window_labelled() {
        let e = voices(
            &THREE[..2],
            &(0..1000).map(|i| i % 2).collect::<Vec<_>>(),
            3,
        );
        assert!(e.len() > MAX_CLUSTERED);
        let labels = cluster(&e, 0.5, SpeakerCount::default());
        assert_eq!(labels.len(), e.len());
        assert!(labels
            .chunks(3)
            .enumerate()
            .all(|(t, c)| c.iter().all(|l| *l == t % 2)));
    }
}
