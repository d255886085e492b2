//! The C structures of DLPack 1.x (`dlpack/dlpack.h`, version 1.1) and the mapping from
//! pybuf's item layouts to DLPack data types.
//!
//! DLPack is the tensor exchange ABI behind Python's `__dlpack__` protocol (the array API
//! standard, `numpy.from_dlpack`, `jax.numpy.from_dlpack`, PyTorch, CuPy). A producer hands
//! the consumer a `PyCapsule` named `"dltensor_versioned"` (a [`DLManagedTensorVersioned`],
//! DLPack 1.x) or, for consumers that do not ask for a version, `"dltensor"` (the legacy
//! [`DLManagedTensor`]). The consumer renames the capsule to `"used_dltensor_versioned"` /
//! `"used_dltensor"` when it takes ownership and calls the tensor's `deleter` exactly once
//! when it no longer needs the memory, from any thread; a capsule that is never consumed
//! calls the deleter from its own destructor.
//!
//! These are plain `#[repr(C)]` mirrors of the header. Enumerations of the header are
//! integer fields with constants here ([`DLDevice::device_type`], [`DLDataType::code`]):
//! a value read from a foreign tensor may be one this version does not know, which a Rust
//! `enum` could not hold soundly.
//!
//! ```
//! use pybuf::dlpack::{DLDataType, DLDataTypeCode};
//! use pybuf::Element;
//!
//! let (t, sub_shape) = DLDataType::of_item(&f32::layout()).unwrap();
//! assert_eq!((t.code, t.bits, t.lanes), (DLDataTypeCode::FLOAT, 32, 1));
//! assert!(sub_shape.is_empty());
//! // sub-array items are more axes of their element type
//! let (t, sub_shape) = DLDataType::of_item(&<[u16; 3]>::layout()).unwrap();
//! assert_eq!((t.code, t.bits, sub_shape), (DLDataTypeCode::UINT, 16, vec![3]));
//! // big-endian data, records and byte strings have no DLPack type
//! assert!(DLDataType::of_item(&pybuf::be::F64::layout()).is_err());
//! ```

use std::ffi::{c_void, CStr};

use crate::format::{Endian, ItemKind, ItemLayout, Scalar, ScalarKind};

/// The DLPack major version this module implements (`DLPACK_MAJOR_VERSION`).
pub const MAJOR_VERSION: u32 = 1;
/// The DLPack minor version this module implements (`DLPACK_MINOR_VERSION`).
pub const MINOR_VERSION: u32 = 1;

/// Capsule name of an unconsumed [`DLManagedTensorVersioned`].
pub const VERSIONED_CAPSULE_NAME: &CStr = c"dltensor_versioned";
/// Capsule name of a [`DLManagedTensorVersioned`] that a consumer has taken ownership of.
pub const USED_VERSIONED_CAPSULE_NAME: &CStr = c"used_dltensor_versioned";
/// Capsule name of an unconsumed legacy [`DLManagedTensor`].
pub const LEGACY_CAPSULE_NAME: &CStr = c"dltensor";
/// Capsule name of a legacy [`DLManagedTensor`] that a consumer has taken ownership of.
pub const USED_LEGACY_CAPSULE_NAME: &CStr = c"used_dltensor";

/// `DLPACK_FLAG_BITMASK_READ_ONLY`: the consumer must not write to the tensor's memory.
pub const FLAG_READ_ONLY: u64 = 1 << 0;
/// `DLPACK_FLAG_BITMASK_IS_COPIED`: the producer made a copy that the consumer owns alone
/// until it calls the deleter.
pub const FLAG_IS_COPIED: u64 = 1 << 1;
/// `DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED`: a sub-byte type is padded, not packed.
pub const FLAG_IS_SUBBYTE_TYPE_PADDED: u64 = 1 << 2;

/// `DLPackVersion`: the ABI version of a [`DLManagedTensorVersioned`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DLPackVersion {
    /// Major version; a consumer must not read anything but the deleter of a tensor whose
    /// major version differs from its own.
    pub major: u32,
    /// Minor version (new enumeration values, same layout).
    pub minor: u32,
}

/// The values of `DLDeviceType` (an `int32_t` enumeration in C).
pub struct DLDeviceType;

impl DLDeviceType {
    /// `kDLCPU`: host memory.
    pub const CPU: i32 = 1;
    /// `kDLCUDA`
    pub const CUDA: i32 = 2;
    /// `kDLCUDAHost`: pinned host memory (`cudaMallocHost`), CPU-accessible.
    pub const CUDA_HOST: i32 = 3;
    /// `kDLOpenCL`
    pub const OPENCL: i32 = 4;
    /// `kDLVulkan`
    pub const VULKAN: i32 = 7;
    /// `kDLMetal`
    pub const METAL: i32 = 8;
    /// `kDLVPI`
    pub const VPI: i32 = 9;
    /// `kDLROCM`
    pub const ROCM: i32 = 10;
    /// `kDLROCMHost`: pinned host memory (`hipMallocHost`).
    pub const ROCM_HOST: i32 = 11;
    /// `kDLExtDev`
    pub const EXT_DEV: i32 = 12;
    /// `kDLCUDAManaged`: unified memory (`cudaMallocManaged`), CPU-accessible.
    pub const CUDA_MANAGED: i32 = 13;
    /// `kDLOneAPI`
    pub const ONEAPI: i32 = 14;
    /// `kDLWebGPU`
    pub const WEBGPU: i32 = 15;
    /// `kDLHexagon`
    pub const HEXAGON: i32 = 16;
    /// `kDLMAIA`
    pub const MAIA: i32 = 17;
    /// `kDLTrn`
    pub const TRN: i32 = 18;

    /// The header's name of a device type (`"kDLCPU"`), or `None` for values it does not
    /// define.
    pub fn name(device_type: i64) -> Option<&'static str> {
        Some(match device_type {
            1 => "kDLCPU",
            2 => "kDLCUDA",
            3 => "kDLCUDAHost",
            4 => "kDLOpenCL",
            7 => "kDLVulkan",
            8 => "kDLMetal",
            9 => "kDLVPI",
            10 => "kDLROCM",
            11 => "kDLROCMHost",
            12 => "kDLExtDev",
            13 => "kDLCUDAManaged",
            14 => "kDLOneAPI",
            15 => "kDLWebGPU",
            16 => "kDLHexagon",
            17 => "kDLMAIA",
            18 => "kDLTrn",
            _ => return None,
        })
    }
}

/// `DLDevice`: where a tensor's memory lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLDevice {
    /// A [`DLDeviceType`] value.
    pub device_type: i32,
    /// The device index; 0 for host memory.
    pub device_id: i32,
}

impl DLDevice {
    /// Host memory: `(kDLCPU, 0)`.
    pub const CPU: DLDevice = DLDevice {
        device_type: DLDeviceType::CPU,
        device_id: 0,
    };
}

/// The values of `DLDataTypeCode` (stored as `uint8_t` in [`DLDataType::code`]).
pub struct DLDataTypeCode;

impl DLDataTypeCode {
    /// `kDLInt`: signed integer.
    pub const INT: u8 = 0;
    /// `kDLUInt`: unsigned integer.
    pub const UINT: u8 = 1;
    /// `kDLFloat`: IEEE 754 binary floating point.
    pub const FLOAT: u8 = 2;
    /// `kDLOpaqueHandle`
    pub const OPAQUE_HANDLE: u8 = 3;
    /// `kDLBfloat`: bfloat16.
    pub const BFLOAT: u8 = 4;
    /// `kDLComplex`: two floats of `bits / 2` each, real part first.
    pub const COMPLEX: u8 = 5;
    /// `kDLBool`: one byte per value.
    pub const BOOL: u8 = 6;
    /// `kDLFloat8_e3m4`
    pub const FLOAT8_E3M4: u8 = 7;
    /// `kDLFloat8_e4m3`
    pub const FLOAT8_E4M3: u8 = 8;
    /// `kDLFloat8_e4m3b11fnuz`
    pub const FLOAT8_E4M3B11FNUZ: u8 = 9;
    /// `kDLFloat8_e4m3fn`
    pub const FLOAT8_E4M3FN: u8 = 10;
    /// `kDLFloat8_e4m3fnuz`
    pub const FLOAT8_E4M3FNUZ: u8 = 11;
    /// `kDLFloat8_e5m2`
    pub const FLOAT8_E5M2: u8 = 12;
    /// `kDLFloat8_e5m2fnuz`
    pub const FLOAT8_E5M2FNUZ: u8 = 13;
    /// `kDLFloat8_e8m0fnu`
    pub const FLOAT8_E8M0FNU: u8 = 14;
    /// `kDLFloat6_e2m3fn`
    pub const FLOAT6_E2M3FN: u8 = 15;
    /// `kDLFloat6_e3m2fn`
    pub const FLOAT6_E3M2FN: u8 = 16;
    /// `kDLFloat4_e2m1fn`
    pub const FLOAT4_E2M1FN: u8 = 17;
}

/// `DLDataType`: the type of one tensor element, always in native byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DLDataType {
    /// A [`DLDataTypeCode`] value.
    pub code: u8,
    /// Bits per lane (8, 16, 32, 64, 128 for the types pybuf maps).
    pub bits: u8,
    /// Lanes per element (vector types); 1 for every type pybuf exports.
    pub lanes: u16,
}

/// Why an item has no DLPack data type (see [`DLDataType::of_item`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoDLPackType {
    /// The scalar is stored in the other byte order (DLPack data is always native).
    ByteOrder(Endian),
    /// A scalar kind DLPack has no code for (byte strings, `'c'`).
    Kind(ScalarKind),
    /// A struct (record) item.
    Record,
    /// A sub-array of zero elements, which no tensor axis can stand for here.
    EmptySubArray,
}

impl std::fmt::Display for NoDLPackType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoDLPackType::ByteOrder(e) => write!(
                f,
                "DLPack data is in native ({}) byte order, these items are {}",
                Endian::NATIVE.name(),
                e.name()
            ),
            NoDLPackType::Kind(k) => write!(f, "DLPack has no data type for {}", k.name()),
            NoDLPackType::Record => f.write_str("DLPack has no data type for records (structs)"),
            NoDLPackType::EmptySubArray => {
                f.write_str("sub-arrays of zero elements cannot be described in DLPack")
            }
        }
    }
}

impl DLDataType {
    /// The DLPack type of a native-order scalar, or why there is none.
    pub fn of_scalar(scalar: Scalar) -> Result<DLDataType, NoDLPackType> {
        use ScalarKind::*;
        if scalar.kind.has_byte_order() && scalar.endian != Endian::NATIVE {
            return Err(NoDLPackType::ByteOrder(scalar.endian));
        }
        let code = match scalar.kind {
            Bool => DLDataTypeCode::BOOL,
            I8 | I16 | I32 | I64 => DLDataTypeCode::INT,
            // a pointer is read as the unsigned integer of its width everywhere in pybuf
            U8 | U16 | U32 | U64 | Pointer => DLDataTypeCode::UINT,
            F16 | F32 | F64 => DLDataTypeCode::FLOAT,
            BF16 => DLDataTypeCode::BFLOAT,
            ComplexF16 | ComplexF32 | ComplexF64 => DLDataTypeCode::COMPLEX,
            Char | Bytes(_) | PascalString(_) => return Err(NoDLPackType::Kind(scalar.kind)),
            // a DLPack type read from a tensor stands for itself
            DLPackOther { code, bits, lanes } => return Ok(DLDataType { code, bits, lanes }),
        };
        Ok(DLDataType {
            code,
            bits: (scalar.kind.size() * 8) as u8,
            lanes: 1,
        })
    }

    /// The DLPack type of the elements of an item, with the sub-array shape that becomes
    /// trailing tensor axes (`[f32; 3]` is float32 with one more axis of length 3, as numpy
    /// folds `'(3)f'` into the array shape).
    pub fn of_item(item: &ItemLayout) -> Result<(DLDataType, Vec<usize>), NoDLPackType> {
        let mut sub_shape = Vec::new();
        let mut item = item;
        loop {
            match &item.kind {
                ItemKind::Scalar(s) => return Ok((DLDataType::of_scalar(*s)?, sub_shape)),
                ItemKind::Array { shape, elem } => {
                    if shape.contains(&0) {
                        return Err(NoDLPackType::EmptySubArray);
                    }
                    sub_shape.extend_from_slice(shape);
                    item = elem;
                }
                ItemKind::Struct(_) => return Err(NoDLPackType::Record),
            }
        }
    }

    /// The pybuf scalar (native byte order) a DLPack type stands for, if pybuf has one:
    /// bool, signed and unsigned integers of 8 to 64 bits, float 16/32/64, bfloat16 and
    /// complex 32/64/128, each with one lane. (The float8/6/4 types and vector types have
    /// none.)
    pub fn to_scalar(self) -> Option<Scalar> {
        use ScalarKind::*;
        if self.lanes != 1 {
            return None;
        }
        let kind = match (self.code, self.bits) {
            (DLDataTypeCode::BOOL, 8) => Bool,
            (DLDataTypeCode::INT, 8) => I8,
            (DLDataTypeCode::INT, 16) => I16,
            (DLDataTypeCode::INT, 32) => I32,
            (DLDataTypeCode::INT, 64) => I64,
            (DLDataTypeCode::UINT, 8) => U8,
            (DLDataTypeCode::UINT, 16) => U16,
            (DLDataTypeCode::UINT, 32) => U32,
            (DLDataTypeCode::UINT, 64) => U64,
            (DLDataTypeCode::FLOAT, 16) => F16,
            (DLDataTypeCode::FLOAT, 32) => F32,
            (DLDataTypeCode::FLOAT, 64) => F64,
            (DLDataTypeCode::BFLOAT, 16) => BF16,
            (DLDataTypeCode::COMPLEX, 32) => ComplexF16,
            (DLDataTypeCode::COMPLEX, 64) => ComplexF32,
            (DLDataTypeCode::COMPLEX, 128) => ComplexF64,
            _ => return None,
        };
        Some(Scalar::native(kind))
    }
}

/// `DLTensor`: a tensor's memory and layout, without ownership.
#[repr(C)]
#[derive(Debug)]
pub struct DLTensor {
    /// The memory; for CPU tensors, the address of the element at index 0 is
    /// `data + byte_offset`.
    pub data: *mut c_void,
    /// Where the memory lives.
    pub device: DLDevice,
    /// Number of dimensions.
    pub ndim: i32,
    /// Element type.
    pub dtype: DLDataType,
    /// `ndim` lengths (may be NULL when `ndim == 0`).
    pub shape: *mut i64,
    /// `ndim` strides in elements, not bytes; NULL means C order.
    pub strides: *mut i64,
    /// Bytes from `data` to the first element.
    pub byte_offset: u64,
}

/// `DLManagedTensor`: the legacy (pre-1.0, unversioned) managed tensor of capsules named
/// `"dltensor"`.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensor {
    /// The tensor.
    pub dl_tensor: DLTensor,
    /// The producer's context.
    pub manager_ctx: *mut c_void,
    /// Called once by the consumer when it is done; frees the tensor itself too. May be NULL.
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

/// `DLManagedTensorVersioned`: the DLPack 1.x managed tensor of capsules named
/// `"dltensor_versioned"`.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensorVersioned {
    /// The ABI version; check `major` before reading anything past `deleter`.
    pub version: DLPackVersion,
    /// The producer's context.
    pub manager_ctx: *mut c_void,
    /// Called once by the consumer when it is done; frees the tensor itself too. May be NULL.
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    /// [`FLAG_READ_ONLY`], [`FLAG_IS_COPIED`], [`FLAG_IS_SUBBYTE_TYPE_PADDED`].
    pub flags: u64,
    /// The tensor.
    pub dl_tensor: DLTensor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    /// Offsets and sizes of dlpack.h on an LP64 machine (pointers and `int64_t` 8 bytes).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layouts_match_the_c_header() {
        assert_eq!(size_of::<DLPackVersion>(), 8);
        assert_eq!(size_of::<DLDevice>(), 8);
        assert_eq!(size_of::<DLDataType>(), 4);
        assert_eq!(offset_of!(DLTensor, data), 0);
        assert_eq!(offset_of!(DLTensor, device), 8);
        assert_eq!(offset_of!(DLTensor, ndim), 16);
        assert_eq!(offset_of!(DLTensor, dtype), 20);
        assert_eq!(offset_of!(DLTensor, shape), 24);
        assert_eq!(offset_of!(DLTensor, strides), 32);
        assert_eq!(offset_of!(DLTensor, byte_offset), 40);
        assert_eq!(size_of::<DLTensor>(), 48);
        assert_eq!(offset_of!(DLManagedTensor, manager_ctx), 48);
        assert_eq!(offset_of!(DLManagedTensor, deleter), 56);
        assert_eq!(size_of::<DLManagedTensor>(), 64);
        assert_eq!(offset_of!(DLManagedTensorVersioned, manager_ctx), 8);
        assert_eq!(offset_of!(DLManagedTensorVersioned, deleter), 16);
        assert_eq!(offset_of!(DLManagedTensorVersioned, flags), 24);
        assert_eq!(offset_of!(DLManagedTensorVersioned, dl_tensor), 32);
        assert_eq!(size_of::<DLManagedTensorVersioned>(), 80);
        assert_eq!(align_of::<DLManagedTensorVersioned>(), 8);
        assert_eq!(
            size_of::<Option<unsafe extern "C" fn(*mut DLManagedTensor)>>(),
            8
        );
    }

    #[test]
    fn every_native_scalar_maps_and_maps_back() {
        use ScalarKind::*;
        for kind in [
            Bool, I8, U8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, ComplexF16,
            ComplexF32, ComplexF64,
        ] {
            let t = DLDataType::of_scalar(Scalar::native(kind)).unwrap();
            assert_eq!(t.lanes, 1);
            assert_eq!(usize::from(t.bits), kind.size() * 8, "{kind:?}");
            assert_eq!(t.to_scalar(), Some(Scalar::native(kind)), "{kind:?}");
        }
        let p = DLDataType::of_scalar(Scalar::native(Pointer)).unwrap();
        assert_eq!(p.code, DLDataTypeCode::UINT);
        for kind in [Char, Bytes(4), PascalString(3)] {
            assert_eq!(
                DLDataType::of_scalar(Scalar::native(kind)),
                Err(NoDLPackType::Kind(kind))
            );
        }
        let other = match Endian::NATIVE {
            Endian::Little => Endian::Big,
            Endian::Big => Endian::Little,
        };
        assert_eq!(
            DLDataType::of_scalar(Scalar::new(F64, other)),
            Err(NoDLPackType::ByteOrder(other))
        );
        // one-byte kinds have no byte order
        assert!(DLDataType::of_scalar(Scalar::new(U8, other)).is_ok());
        let bf16 = DLDataType {
            code: DLDataTypeCode::BFLOAT,
            bits: 16,
            lanes: 1,
        };
        assert_eq!(bf16.to_scalar(), Some(Scalar::native(BF16)));
        let f32x4 = DLDataType {
            code: DLDataTypeCode::FLOAT,
            bits: 32,
            lanes: 4,
        };
        assert_eq!(f32x4.to_scalar(), None);
    }

    #[test]
    fn sub_arrays_become_trailing_axes_and_records_are_refused() {
        use crate::Element;
        let (t, sub) = DLDataType::of_item(&<[[i16; 3]; 2]>::layout()).unwrap();
        assert_eq!((t.code, t.bits), (DLDataTypeCode::INT, 16));
        assert_eq!(sub, [2, 3]);
        let record = crate::format::parse("T{d:x:d:y:}").unwrap();
        assert_eq!(DLDataType::of_item(&record), Err(NoDLPackType::Record));
        let empty = crate::format::parse("(0)d").unwrap();
        assert_eq!(
            DLDataType::of_item(&empty),
            Err(NoDLPackType::EmptySubArray)
        );
    }
}
