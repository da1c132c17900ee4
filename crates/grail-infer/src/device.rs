//! Device selection: CPU by default, CUDA when libtorch sees a GPU.

use tch::Device;

/// Where to run a model: `auto`, `cpu`, `cuda` or `cuda:N` as text (flags, configuration
/// files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// CUDA when available, otherwise CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The CUDA device with this ordinal.
    Cuda(usize),
}

/// An error choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A CUDA device was asked for but libtorch sees none (or fewer).
    #[error("CUDA device {requested} requested but libtorch sees {available} CUDA device(s)")]
    CudaUnavailable {
        /// The ordinal asked for.
        requested: usize,
        /// How many devices libtorch sees.
        available: usize,
    },
    /// A device name that is not `auto`, `cpu`, `cuda` or `cuda:N`.
    #[error("device `{0}` is not auto, cpu, cuda or cuda:N")]
    Unparsable(String),
}

impl std::str::FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, DeviceError> {
        let bad = || DeviceError::Unparsable(text.to_string());
        Ok(match text.trim() {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "cuda" => Self::Cuda(0),
            other => {
                let ordinal = other.strip_prefix("cuda:").ok_or_else(bad)?;
                Self::Cuda(ordinal.parse().map_err(|_| bad())?)
            }
        })
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = DeviceError;

    fn try_from(text: String) -> Result<Self, DeviceError> {
        text.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(choice: DeviceChoice) -> Self {
        choice.to_string()
    }
}

/// Resolves a [`DeviceChoice`] to a tch device.
pub fn resolve(choice: DeviceChoice) -> Result<Device, DeviceError> {
    let available = if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    };
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if available > 0 => Ok(Device::Cuda(0)),
        DeviceChoice::Auto => Ok(Device::Cpu),
        DeviceChoice::Cuda(requested) if requested < available => Ok(Device::Cuda(requested)),
        DeviceChoice::Cuda(requested) => Err(DeviceError::CudaUnavailable {
            requested,
            available,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    /// Proof that libtorch links and loads: a matmul and a backward pass on the CPU.
    #[test]
    fn libtorch_matmul_and_backward_on_cpu() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0])
            .reshape([2, 2])
            .set_requires_grad(true);
        let b = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0]).reshape([2, 2]);
        let c = a.matmul(&b);
        let got: Vec<f32> = Vec::try_from(c.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![19.0, 22.0, 43.0, 50.0]);
        // d(sum(a @ b))/da[i][k] = sum_j b[k][j]
        c.sum(Kind::Float).backward();
        let grad: Vec<f32> = Vec::try_from(a.grad().flatten(0, -1)).unwrap();
        assert_eq!(grad, vec![11.0, 15.0, 11.0, 15.0]);
    }

    #[test]
    fn device_names_parse_print_and_refuse_garbage() {
        for (text, choice) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceChoice>().unwrap(), choice, "{text}");
            assert_eq!(choice.to_string().parse::<DeviceChoice>().unwrap(), choice);
        }
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda1", "CPU"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(err.to_string().contains("not auto, cpu"), "{bad}: {err}");
        }
    }

    #[test]
    fn cuda_request_beyond_available_is_an_error() {
        let err = resolve(DeviceChoice::Cuda(1_000)).unwrap_err();
        assert!(err.to_string().contains("1000"), "{err}");
        assert_eq!(resolve(DeviceChoice::Cpu).unwrap(), Device::Cpu);
    }
}
