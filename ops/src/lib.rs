//! CubeCL kernels for cubegrad. Empty until the CubeCL backend lands: see issue "CubeCL backend".
