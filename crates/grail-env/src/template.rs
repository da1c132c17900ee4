//! Chat templates: how a problem becomes the exact prompt text the model sees.
//!
//! The model's own template (`tokenizer_config.json` `chat_template`, Jinja, rendered
//! with minijinja configured like Hugging Face: `trim_blocks`, `lstrip_blocks`, Python
//! string methods) is used when present; ChatML (Qwen, SmolLM2) and Llama-3 are built in
//! as fallbacks. Rendering is a pure function of the template and the messages, so miner
//! and validator produce the same bytes.

use serde::{Deserialize, Serialize};

use crate::EnvError;

/// The system prompt every environment uses: reasoning between the working-out tags,
/// answer in `<SOLUTION>` tags.
pub const SYSTEM_PROMPT: &str = "You are given a problem. Think step by step.\nPlace your reasoning between <start_working_out> and </end_working_out>.\nThen give your final answer between <SOLUTION> and </SOLUTION>.";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: &str) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: &str) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// A chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
    /// `<|im_start|>assistant\n`.
    ChatMl,
    /// `<|begin_of_text|>`, then `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`
    /// per message, then the assistant header.
    Llama3,
    /// A Hugging Face Jinja template with its special tokens.
    Jinja {
        /// Template source.
        source: String,
        /// `bos_token` as the template sees it.
        bos_token: String,
        /// `eos_token` as the template sees it.
        eos_token: String,
    },
}

impl ChatTemplate {
    /// The template of a `tokenizer_config.json`: its `chat_template` (a string, or the
    /// entry named `default` of a list), else `fallback`.
    pub fn from_tokenizer_config(json: &str, fallback: ChatTemplate) -> Result<Self, EnvError> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(EnvError::TemplateConfig)?;
        let token = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other["content"].as_str().unwrap_or_default().to_string(),
        };
        let source = match &v["chat_template"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(str::to_string),
            _ => None,
        };
        Ok(match source {
            Some(source) => ChatTemplate::Jinja {
                source,
                bos_token: token("bos_token"),
                eos_token: token("eos_token"),
            },
            None => fallback,
        })
    }

    /// Renders messages, appending the assistant's generation prompt when asked.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, EnvError> {
        let mut out = String::new();
        match self {
            ChatTemplate::ChatMl => {
                for m in messages {
                    out.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        m.role, m.content
                    ));
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            ChatTemplate::Llama3 => {
                out.push_str("<|begin_of_text|>");
                for m in messages {
                    out.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role, m.content
                    ));
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            ChatTemplate::Jinja {
                source,
                bos_token,
                eos_token,
            } => {
                let mut env = minijinja::Environment::new();
                env.set_trim_blocks(true);
                env.set_lstrip_blocks(true);
                env.set_unknown_method_callback(
                    minijinja_contrib::pycompat::unknown_method_callback,
                );
                env.add_function(
                    "raise_exception",
                    |msg: String| -> Result<String, minijinja::Error> {
                        Err(minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            msg,
                        ))
                    },
                );
                env.add_template("chat", source).map_err(EnvError::Jinja)?;
                out = env
                    .get_template("chat")
                    .map_err(EnvError::Jinja)?
                    .render(minijinja::context! {
                        messages => messages,
                        add_generation_prompt => add_generation_prompt,
                        bos_token => bos_token,
                        eos_token => eos_token,
                    })
                    .map_err(EnvError::Jinja)?;
            }
        }
        Ok(out)
    }

    /// End-of-turn markers whose decoded text ends an assistant turn under this template.
    pub fn eos_markers(&self) -> Vec<String> {
        match self {
            ChatTemplate::ChatMl => vec!["<|im_end|>".into()],
            ChatTemplate::Llama3 => vec!["<|eot_id|>".into(), "<|end_of_text|>".into()],
            ChatTemplate::Jinja { eos_token, .. } => vec![eos_token.clone()],
        }
    }
}
