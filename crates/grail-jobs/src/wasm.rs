//! Custom rewards as WebAssembly modules, run in a sandbox that gives the same answer on
//! every machine.
//!
//! The runtime is `wasmi` (an interpreter; `docs/jobs.md` has the measurement that chose
//! it over wasmtime), built with its `deterministic` feature so every NaN an instruction
//! produces is the canonical one: a module cannot read hardware-dependent NaN bits and
//! reward differently on x86 and ARM. A module imports nothing — no WASI, clock,
//! randomness, network or files exist to call — and each call runs in a fresh instance
//! with [`WASM_FUEL_PER_CALL`] fuel and at most [`WASM_MAX_MEMORY_BYTES`] of memory, so a
//! reward cannot depend on the calls before it.
//!
//! # ABI
//!
//! ```text
//! (memory (export "memory") …)                        ; one memory, ≤ 16 MiB
//! (func (export "alloc") (param i32) (result i32))    ; a pointer to n writable bytes
//! (func (export "reward")
//!   (param i32 i32  i32 i32  i32 i32) (result f64))   ; completion, answer, metadata
//! ```
//!
//! The host calls `alloc` once per input and copies the UTF-8 bytes there, then calls
//! `reward(completion_ptr, completion_len, answer_ptr, answer_len, meta_ptr, meta_len)`.
//! The completion has its end-of-sequence marker removed; the answer is the prompt's
//! gold answer (empty when it has none); the metadata is its canonical JSON object
//! (`{}` when it has none). The result is clamped to `[0, 1]`; NaN, a trap or running out
//! of fuel is reward 0 on every node (a new job is refused when its module does any of
//! these on the probe inputs, see [`crate::reward::Scorer::probe`]).

use wasmi::{
    CompilationMode, Config, EnforcedLimits, Engine, Linker, Module, Store, StoreLimits,
    StoreLimitsBuilder, TrapCode, TypedFunc,
};

use crate::limits::{
    MAX_MODULE_BYTES, MAX_REWARD_INPUT_BYTES, WASM_FUEL_PER_CALL, WASM_MAX_MEMORY_BYTES,
    WASM_MAX_RECURSION,
};

/// Why a module cannot be a reward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// Over [`MAX_MODULE_BYTES`].
    #[error("reward module is {bytes} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid WebAssembly, or uses a feature the sandbox leaves out (SIMD, threads,
    /// 64-bit memory, several memories, a start function).
    #[error("reward module is not valid WebAssembly for the sandbox: {detail}")]
    Invalid {
        /// The runtime's message.
        detail: String,
    },
    /// It imports something; the sandbox offers nothing to import.
    #[error("reward module imports `{module}.{name}`; reward modules may import nothing (no WASI, clock, randomness, network or files)")]
    Import {
        /// Import module name.
        module: String,
        /// Import item name.
        name: String,
    },
    /// A required export is missing or has another type.
    #[error("reward module must export {what}: {detail}")]
    Export {
        /// The export and its expected type.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Instantiation failed (e.g. its declared memory is over the limit).
    #[error("reward module cannot be instantiated within the sandbox's limits ({max_memory} bytes of memory): {detail}")]
    Instantiate {
        /// The memory limit.
        max_memory: usize,
        /// The runtime's message.
        detail: String,
    },
}

/// How one reward call failed. Every variant is deterministic: the same module and
/// inputs fail the same way on every node, and the reward is then 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// It used all of [`WASM_FUEL_PER_CALL`].
    #[error("reward module ran out of fuel ({WASM_FUEL_PER_CALL} units)")]
    OutOfFuel,
    /// It trapped (unreachable, out-of-bounds access, stack overflow, …).
    #[error("reward module trapped: {message}")]
    Trap {
        /// The runtime's trap message.
        message: String,
    },
    /// The call's fresh instance could not be made.
    #[error("reward call: {source}")]
    Instantiate {
        /// Why (as at [`RewardModule::compile`]).
        #[source]
        source: ModuleError,
    },
    /// The runtime refused to set the call's fuel (an engine without fuel metering).
    #[error("reward sandbox cannot meter fuel: {message}")]
    Fuel {
        /// The runtime's message.
        message: String,
    },
    /// `alloc` returned memory the input does not fit in.
    #[error("reward module's alloc returned {ptr} for {len} bytes, outside its memory")]
    BadPointer {
        /// The pointer.
        ptr: i32,
        /// The length asked for.
        len: usize,
    },
}

/// The store's data: only the resource limits.
struct Sandbox {
    limits: StoreLimits,
}

/// The exports of one fresh instance.
struct Exports {
    memory: wasmi::Memory,
    alloc: TypedFunc<i32, i32>,
    reward: TypedFunc<(i32, i32, i32, i32, i32, i32), f64>,
}

/// A validated reward module, ready to call.
#[derive(Clone)]
pub struct RewardModule {
    engine: Engine,
    module: Module,
}

impl std::fmt::Debug for RewardModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardModule").finish_non_exhaustive()
    }
}

/// The inputs of one reward call.
#[derive(Debug, Clone, Copy)]
pub struct RewardInput<'a> {
    /// The completion text, end-of-sequence marker removed.
    pub completion: &'a str,
    /// The gold answer, or "".
    pub answer: &'a str,
    /// The prompt's metadata as canonical JSON, or "{}".
    pub meta: &'a str,
}

fn engine() -> Engine {
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(CompilationMode::Eager)
        .enforced_limits(EnforcedLimits::strict())
        .set_max_recursion_depth(WASM_MAX_RECURSION)
        .wasm_multi_memory(false)
        .wasm_tail_call(false)
        .allow_start_fn(false);
    Engine::new(&config)
}

impl RewardModule {
    /// Validates and compiles a module, and checks its imports, exports and that it
    /// instantiates within the limits.
    pub fn compile(bytes: &[u8]) -> Result<Self, ModuleError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(ModuleError::TooLarge {
                bytes: bytes.len(),
                max: MAX_MODULE_BYTES,
            });
        }
        let engine = engine();
        let module = Module::new(&engine, bytes).map_err(|e| ModuleError::Invalid {
            detail: e.to_string(),
        })?;
        if let Some(import) = module.imports().next() {
            return Err(ModuleError::Import {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
        let this = Self { engine, module };
        let mut store = this.store();
        this.instantiate(&mut store)?;
        Ok(this)
    }

    fn store(&self) -> Store<Sandbox> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(WASM_MAX_MEMORY_BYTES)
            .memories(1)
            .instances(1)
            .tables(4)
            .table_elements(100_000)
            .build();
        let mut store = Store::new(&self.engine, Sandbox { limits });
        store.limiter(|s| &mut s.limits);
        store
    }

    fn instantiate(&self, store: &mut Store<Sandbox>) -> Result<Exports, ModuleError> {
        let linker = Linker::<Sandbox>::new(&self.engine);
        let instance = linker
            .instantiate_and_start(&mut *store, &self.module)
            .map_err(|e| ModuleError::Instantiate {
                max_memory: WASM_MAX_MEMORY_BYTES,
                detail: e.to_string(),
            })?;
        let memory = instance
            .get_memory(&*store, "memory")
            .ok_or(ModuleError::Export {
                what: "`memory` (its linear memory)",
                detail: "not exported".into(),
            })?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&*store, "alloc")
            .map_err(|e| ModuleError::Export {
                what: "`alloc: (i32) -> i32`",
                detail: e.to_string(),
            })?;
        let reward = instance
            .get_typed_func::<(i32, i32, i32, i32, i32, i32), f64>(&*store, "reward")
            .map_err(|e| ModuleError::Export {
                what: "`reward: (i32, i32, i32, i32, i32, i32) -> f64`",
                detail: e.to_string(),
            })?;
        Ok(Exports {
            memory,
            alloc,
            reward,
        })
    }

    /// Runs `reward` on one input in a fresh instance; the raw result (NaN and values
    /// outside `[0, 1]` included — [`crate::reward`] canonicalises them).
    pub fn call(&self, input: RewardInput<'_>) -> Result<f64, CallError> {
        let mut store = self.store();
        store
            .set_fuel(WASM_FUEL_PER_CALL)
            .map_err(|e| CallError::Fuel {
                message: e.to_string(),
            })?;
        let exports = self
            .instantiate(&mut store)
            .map_err(|source| CallError::Instantiate { source })?;
        let mut args = [0i32; 6];
        for (i, text) in [input.completion, input.answer, input.meta]
            .into_iter()
            .enumerate()
        {
            let bytes = cut(text.as_bytes());
            // At most MAX_REWARD_INPUT_BYTES, which fits an i32 (asserted below).
            let len = bytes.len() as i32;
            let ptr = exports.alloc.call(&mut store, len).map_err(call_error)?;
            let start = usize::try_from(ptr).map_err(|_| CallError::BadPointer {
                ptr,
                len: bytes.len(),
            })?;
            exports
                .memory
                .write(&mut store, start, bytes)
                .map_err(|_| CallError::BadPointer {
                    ptr,
                    len: bytes.len(),
                })?;
            args[2 * i] = ptr;
            args[2 * i + 1] = len;
        }
        exports
            .reward
            .call(
                &mut store,
                (args[0], args[1], args[2], args[3], args[4], args[5]),
            )
            .map_err(call_error)
    }
}

const _: () = assert!(MAX_REWARD_INPUT_BYTES <= i32::MAX as usize);

/// At most [`MAX_REWARD_INPUT_BYTES`] of an input.
fn cut(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_REWARD_INPUT_BYTES)]
}

fn call_error(e: wasmi::Error) -> CallError {
    match e.as_trap_code() {
        Some(TrapCode::OutOfFuel) => CallError::OutOfFuel,
        Some(code) => CallError::Trap {
            message: code.to_string(),
        },
        None => CallError::Trap {
            message: e.to_string(),
        },
    }
}
