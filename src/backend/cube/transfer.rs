//! Whole buffers between the host and a device: the only two places data crosses the bus.
//! i64 travels as two little-endian u32 words and bool as one u32 per element, the device
//! layout (`storage.rs`).

use super::runtime::{open, with_runtime};
use super::storage::CubeStorage;
use crate::backend::storage::CpuData;
use crate::error::{Error, Result};
use crate::tensor::{device::Device, dtype::DType};
use cubegrad_ops::cubecl::prelude::*;

/// Copies CPU data (the whole buffer, in storage order) to `device`.
pub(crate) fn upload(data: &CpuData, device: Device) -> Result<CubeStorage> {
    open("to_device", device)?;
    let dtype = data.dtype();
    with_runtime!("to_device", device, |R, client| {
        if dtype == DType::F64 && !client.properties().supports_type(f64::cube_type()) {
            return Err(Error::DType {
                op: "to_device",
                got: dtype,
                expected: "f32 on this device (its runtime has no f64)",
            });
        }
        // An empty tensor still gets a (one-element) buffer: CubeCL allocates no zero sizes.
        let handle = match data {
            CpuData::F32(v) => client.create_from_slice(f32::as_bytes(pad(v, 0.0).as_ref())),
            CpuData::F64(v) => client.create_from_slice(f64::as_bytes(pad(v, 0.0).as_ref())),
            CpuData::I64(v) => {
                let w: Vec<u32> = pad(v, 0)
                    .iter()
                    .flat_map(|&x| [x as u64 as u32, ((x as u64) >> 32) as u32])
                    .collect();
                client.create_from_slice(u32::as_bytes(&w))
            }
            CpuData::Bool(v) => {
                let w: Vec<u32> = pad(v, false).iter().map(|&b| b as u32).collect();
                client.create_from_slice(u32::as_bytes(&w))
            }
        };
        Ok(CubeStorage {
            handle,
            len: data.len(),
            dtype,
            device,
        })
    })
}

fn pad<T: Copy>(v: &[T], fill: T) -> std::borrow::Cow<'_, [T]> {
    if v.is_empty() {
        std::borrow::Cow::Owned(vec![fill])
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// Reads the whole buffer back (one synchronisation with the device).
pub(crate) fn download(s: &CubeStorage) -> Result<CpuData> {
    with_runtime!("to_vec", s.device, |R, client| {
        let bytes = client
            .read_one(s.handle.clone())
            .map_err(|e| Error::invalid("to_vec", format!("reading from {}: {e:?}", s.device)))?;
        let n = s.len;
        Ok(match s.dtype {
            DType::F32 => CpuData::F32(f32::from_bytes(&bytes)[..n].to_vec()),
            DType::F64 => CpuData::F64(f64::from_bytes(&bytes)[..n].to_vec()),
            DType::I64 => CpuData::I64(
                u32::from_bytes(&bytes)[..2 * n]
                    .chunks_exact(2)
                    .map(|w| (w[0] as u64 | ((w[1] as u64) << 32)) as i64)
                    .collect(),
            ),
            DType::Bool => CpuData::Bool(
                u32::from_bytes(&bytes)[..n]
                    .iter()
                    .map(|&w| w != 0)
                    .collect(),
            ),
        })
    })
}
