//! The bound part of OpenVINO's C API: the functions, loaded from the library once per
//! path, and its status codes turned into errors with OpenVINO's own message.

use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use libloading::Library;

/// `ov_shape_t`.
#[repr(C)]
pub(crate) struct Shape {
    pub(crate) rank: i64,
    pub(crate) dims: *mut i64,
}

pub(crate) type Status = i32;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Port {
    Input(&'static CStr),
    Output(usize),
}
pub(crate) type Handle = *mut c_void;

/// The bound functions; `_library` keeps them loaded.
pub(crate) struct Api {
    _library: Library,
    pub(crate) core_create: unsafe extern "C" fn(*mut Handle) -> Status,
    pub(crate) core_free: unsafe extern "C" fn(Handle),
    pub(crate) read_model:
        unsafe extern "C" fn(Handle, *const c_char, *const c_char, *mut Handle) -> Status,
    pub(crate) compile_model:
        unsafe extern "C" fn(Handle, Handle, *const c_char, usize, *mut Handle, ...) -> Status,
    pub(crate) compiled_property:
        unsafe extern "C" fn(Handle, *const c_char, *mut *mut c_char) -> Status,
    pub(crate) compiled_free: unsafe extern "C" fn(Handle),
    pub(crate) model_free: unsafe extern "C" fn(Handle),
    pub(crate) create_request: unsafe extern "C" fn(Handle, *mut Handle) -> Status,
    pub(crate) request_free: unsafe extern "C" fn(Handle),
    pub(crate) set_tensor: unsafe extern "C" fn(Handle, *const c_char, Handle) -> Status,
    pub(crate) infer: unsafe extern "C" fn(Handle) -> Status,
    pub(crate) output: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub(crate) tensor_from_host:
        unsafe extern "C" fn(u32, Shape, *mut c_void, *mut Handle) -> Status,
    pub(crate) tensor_free: unsafe extern "C" fn(Handle),
    pub(crate) input_by_name: unsafe extern "C" fn(Handle, *const c_char, *mut Handle) -> Status,
    pub(crate) output_by_index: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub(crate) port_type: unsafe extern "C" fn(Handle, *mut u32) -> Status,
    pub(crate) port_free: unsafe extern "C" fn(Handle),
    pub(crate) tensor_data: unsafe extern "C" fn(Handle, *mut *mut c_void) -> Status,
    pub(crate) tensor_shape: unsafe extern "C" fn(Handle, *mut Shape) -> Status,
    pub(crate) tensor_type: unsafe extern "C" fn(Handle, *mut u32) -> Status,
    pub(crate) tensor_bytes: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub(crate) shape_create: unsafe extern "C" fn(i64, *const i64, *mut Shape) -> Status,
    pub(crate) shape_free: unsafe extern "C" fn(*mut Shape) -> Status,
    pub(crate) last_error: unsafe extern "C" fn() -> *const c_char,
    pub(crate) free: unsafe extern "C" fn(*const c_char),
}

impl Api {
    /// # Safety
    /// `path` must be OpenVINO's C library, whose functions have the signatures above.
    pub(crate) unsafe fn load(path: &Path) -> anyhow::Result<Self> {
        // The real file: the library finds libopenvino.so and the CPU plugin beside itself
        // ($ORIGIN), and bootstrap links it from the wheel's directory.
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("OpenVINO library {}", path.display()))?;
        // SAFETY: the caller vouches that this is OpenVINO's C library; loading it runs its
        // initialisers, which is what it is for.
        let library = unsafe { Library::new(&path) }
            .with_context(|| format!("OpenVINO library {}", path.display()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the field's type is the published signature of this function.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .with_context(|| format!("{} has no {}", path.display(), $name))?
            };
        }
        Ok(Self {
            core_create: sym!("ov_core_create"),
            core_free: sym!("ov_core_free"),
            read_model: sym!("ov_core_read_model"),
            compile_model: sym!("ov_core_compile_model"),
            compiled_property: sym!("ov_compiled_model_get_property"),
            compiled_free: sym!("ov_compiled_model_free"),
            model_free: sym!("ov_model_free"),
            create_request: sym!("ov_compiled_model_create_infer_request"),
            request_free: sym!("ov_infer_request_free"),
            set_tensor: sym!("ov_infer_request_set_tensor"),
            infer: sym!("ov_infer_request_infer"),
            output: sym!("ov_infer_request_get_output_tensor_by_index"),
            tensor_from_host: sym!("ov_tensor_create_from_host_ptr"),
            tensor_free: sym!("ov_tensor_free"),
            input_by_name: sym!("ov_compiled_model_input_by_name"),
            output_by_index: sym!("ov_compiled_model_output_by_index"),
            port_type: sym!("ov_port_get_element_type"),
            port_free: sym!("ov_output_const_port_free"),
            tensor_data: sym!("ov_tensor_data"),
            tensor_shape: sym!("ov_tensor_get_shape"),
            tensor_type: sym!("ov_tensor_get_element_type"),
            tensor_bytes: sym!("ov_tensor_get_byte_size"),
            shape_create: sym!("ov_shape_create"),
            shape_free: sym!("ov_shape_free"),
            last_error: sym!("ov_get_last_err_msg"),
            free: sym!("ov_free"),
            _library: library,
        })
    }

    /// `status` as a result, with OpenVINO's last message when the call failed.
    pub(crate) fn check(&self, status: Status, what: &str) -> anyhow::Result<()> {
        if status == 0 {
            return Ok(());
        }
        // SAFETY: the C API returns a string it allocated (or null), freed with ov_free.
        let message = unsafe {
            let m = (self.last_error)();
            if m.is_null() {
                String::new()
            } else {
                let s = CStr::from_ptr(m).to_string_lossy().into_owned();
                (self.free)(m);
                s
            }
        };
        let message = message.trim();
        anyhow::bail!("OpenVINO {what} failed (status {status}){}", {
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        })
    }
}

/// The libraries loaded so far, by the path asked for: each is loaded once per process.
static LOADED: Mutex<Vec<(PathBuf, Arc<Api>)>> = Mutex::new(Vec::new());

pub(crate) fn api(library: &Path) -> anyhow::Result<Arc<Api>> {
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, api)) = loaded.iter().find(|(p, _)| p == library) {
        return Ok(api.clone());
    }
    // SAFETY: bootstrap links OpenVINO's C library at this path (or the setting names it).
    let api = Arc::new(unsafe { Api::load(library) }?);
    loaded.push((library.to_owned(), api.clone()));
    Ok(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let err = api(Path::new("/nonexistent/libopenvino_c.so"))
            .err()
            .expect("refused");
        assert!(
            format!("{err:#}").contains("/nonexistent/libopenvino_c.so"),
            "{err:#}"
        );
    }
}
