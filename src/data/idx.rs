//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a type
//! code, the number of dimensions, then each dimension as a `u32`) followed by the raw values.
//! Only unsigned bytes (type `0x08`) occur in these data sets, so only they are read.

use super::{read_maybe_gz, Dataset};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// The ten Fashion-MNIST classes, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// An IDX array of bytes: its dimensions and its values in row-major order.
#[derive(Clone, Debug)]
pub struct IdxBytes {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (gzipped if its name ends in `.gz`).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxBytes> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::file(path, "not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(Error::file(
            path,
            format!(
                "IDX type 0x{:02x}: only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::file(path, "IDX header is cut short"));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let found = bytes.len() - header;
    // Checked: a corrupt header can claim dimensions whose product overflows.
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(found) {
        let expected = expected.map_or("more than 2^64".to_string(), |e| e.to_string());
        return Err(Error::file(
            path,
            format!("IDX dims {dims:?} need {expected} values, the file holds {found}"),
        ));
    }
    Ok(IdxBytes {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Images and labels from a pair of IDX files: `x` `[n, 1, rows, cols]` f32 in [0, 1], `y` `[n]`
/// i64. Checks that there are as many labels as images and that every label is below 10.
pub fn load_idx_images(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    let (ipath, lpath) = (images.as_ref(), labels.as_ref());
    let img = read_idx(ipath)?;
    let lab = read_idx(lpath)?;
    if img.dims.len() != 3 {
        return Err(Error::file(
            ipath,
            format!("expected images [n, rows, cols], found dims {:?}", img.dims),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(Error::file(
            lpath,
            format!("expected labels [n], found dims {:?}", lab.dims),
        ));
    }
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if lab.dims[0] != n {
        return Err(Error::file(
            lpath,
            format!(
                "{} labels for the {n} images of {}",
                lab.dims[0],
                ipath.display()
            ),
        ));
    }
    if let Some(i) = lab.data.iter().position(|&l| l >= 10) {
        return Err(Error::file(
            lpath,
            format!("label {} of image {i} is not a class 0..=9", lab.data[i]),
        ));
    }
    let x: Vec<f32> = img.data.iter().map(|&p| p as f32 / 255.0).collect();
    let y: Vec<i64> = lab.data.iter().map(|&l| l as i64).collect();
    Ok(Dataset::new(
        Tensor::from_vec(x, [n, 1, rows, cols]),
        Tensor::from_vec(y, [n]),
    ))
}

/// The vendored Fashion-MNIST: the 20,000-image training subset and the 10,000-image test
/// split, from `dir` (usually `data/fashion-mnist`). Returns `(train, test)`.
pub fn load_fashion_mnist(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    let train = load_idx_images(
        dir.join("train-20k-images-idx3-ubyte.gz"),
        dir.join("train-20k-labels-idx1-ubyte.gz"),
    )?;
    let test = load_idx_images(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )?;
    Ok((train, test))
}
