//! safetensors files: a JSON header (names, dtypes, shapes, offsets, string metadata) and the
//! raw little-endian data. The same files load in PyTorch with `safetensors.torch.load_file`.

use crate::backend::host_tensor;
use crate::backend::storage::CpuData;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::{DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// String metadata stored in the file header.
pub type Metadata = HashMap<String, String>;

struct TensorBytes {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &TensorBytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_bytes(t: &Tensor) -> TensorBytes {
    let shape = t.dims().to_vec();
    let (dtype, bytes) = match t.dtype() {
        DType::F32 => (
            Dtype::F32,
            t.to_vec::<f32>()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            Dtype::F64,
            t.to_vec::<f64>()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            Dtype::I64,
            t.to_vec::<i64>()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::Bool => (
            Dtype::BOOL,
            t.to_vec::<bool>().iter().map(|&b| b as u8).collect(),
        ),
    };
    TensorBytes {
        dtype,
        shape,
        bytes,
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never a
/// torn one: write a temporary file beside it, flush it to disk, rename it over the target.
pub fn write_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?;
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    remove_stale_temporaries(dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Removes the temporary files that writers of the same target left when they were killed
/// mid-write (named by their process ids): those whose process no longer runs. Where
/// processes cannot be looked up (no `/proc`), nothing is removed.
fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let proc_fs = Path::new("/proc/self");
    if !proc_fs.exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Saves named tensors (in name order) with string metadata, atomically.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: &Metadata,
) -> Result<()> {
    let path = path.as_ref();
    let mut seen = std::collections::HashSet::new();
    for (n, _) in tensors {
        if !seen.insert(n) {
            return Err(Error::file(
                path,
                format!("tensor name {n:?} appears twice"),
            ));
        }
    }
    let owned: BTreeMap<&str, TensorBytes> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), to_bytes(t)))
        .collect();
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone())
    };
    let bytes = safetensors::serialize(owned.iter().map(|(n, t)| (*n, t)), meta)
        .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
    write_atomically(path, &bytes)
}

fn from_view(
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
) -> Result<Tensor> {
    fn chunks<const N: usize>(d: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        d.chunks_exact(N)
            .map(|c| c.try_into().expect("exact chunk"))
    }
    let cpu = match dtype {
        Dtype::F32 => CpuData::F32(chunks::<4>(data).map(f32::from_le_bytes).collect()),
        Dtype::F64 => CpuData::F64(chunks::<8>(data).map(f64::from_le_bytes).collect()),
        Dtype::I64 => CpuData::I64(chunks::<8>(data).map(i64::from_le_bytes).collect()),
        Dtype::BOOL => CpuData::Bool(data.iter().map(|&b| b != 0).collect()),
        other => {
            return Err(Error::file(
                path,
                format!(
                    "tensor {name:?} has dtype {other:?}; cubegrad reads F32, F64, I64 and BOOL"
                ),
            ));
        }
    };
    let n: usize = shape.iter().product();
    if cpu.len() != n {
        return Err(Error::file(
            path,
            format!(
                "tensor {name:?}: {} bytes do not hold shape {shape:?}",
                data.len()
            ),
        ));
    }
    Ok(host_tensor(cpu, crate::tensor::Shape::new(shape)))
}

/// Reads every tensor of a safetensors file, sorted by name, and its metadata.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<(Vec<(String, Tensor)>, Metadata)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, format!("bad header: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        out.push((
            name.clone(),
            from_view(path, &name, view.dtype(), view.shape(), view.data())?,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, metadata))
}

/// Saves a module's parameters and buffers under their dotted names (a PyTorch state dict).
pub fn save_module(module: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    save_tensors(path, &module.state_dict(), &Metadata::new())
}

/// Loads a state dict into `module`, strictly: a missing, unexpected or mis-shaped tensor is an
/// error that names every such tensor, and nothing is changed unless everything matches.
pub fn load_module(module: &mut dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let (tensors, _) = load_tensors(path)?;
    assign_state(module, tensors, path, None)
}

/// Assigns tensors to the module's entries by name; names starting with `skip_prefix` (the
/// optimizer's part of a checkpoint) are not the module's and are left out.
pub(crate) fn assign_state(
    module: &mut dyn Module,
    tensors: Vec<(String, Tensor)>,
    path: &Path,
    skip_prefix: Option<&str>,
) -> Result<()> {
    let mut by_name: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(n, _)| skip_prefix.is_none_or(|p| !n.starts_with(p)))
        .collect();
    let expected = module.state_dict();
    let mut problems = Vec::new();
    for (name, t) in &expected {
        match by_name.get(name) {
            None => problems.push(format!("missing {name:?} (expected shape {})", t.shape())),
            Some(f) if f.shape() != t.shape() => problems.push(format!(
                "{name:?} has shape {} in the file but {} in the model",
                f.shape(),
                t.shape()
            )),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&String> = expected.iter().map(|(n, _)| n).collect();
    let mut extra: Vec<&String> = by_name.keys().filter(|n| !known.contains(n)).collect();
    extra.sort();
    for n in extra {
        problems.push(format!("unexpected {n:?}"));
    }
    if !problems.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "state dict does not match the model: {}",
                problems.join("; ")
            ),
        ));
    }
    module.visit_state_mut("", &mut |name, t| {
        let loaded = by_name.remove(name).expect("checked above");
        *t = loaded
            .to_dtype(t.dtype())
            .to_device(t.device())
            .set_requires_grad(t.requires_grad());
    });
    Ok(())
}
