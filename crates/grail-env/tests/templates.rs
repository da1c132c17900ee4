//! Chat templates: built-ins, the model's own Jinja template, and byte-identical renders.

use grail_env::sat::SatEnv;
use grail_env::template::{ChatTemplate, Message};
use grail_env::Environment;

/// SmolLM2-135M-Instruct's `chat_template` (ChatML with a default system prompt).
const SMOLLM2_CONFIG: &str = r#"{
  "bos_token": "<|im_start|>",
  "eos_token": "<|im_end|>",
  "chat_template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
}"#;

#[test]
fn model_template_matches_builtin_chatml_when_a_system_message_is_given() {
    let t = ChatTemplate::from_tokenizer_config(SMOLLM2_CONFIG, ChatTemplate::ChatMl).unwrap();
    assert!(matches!(t, ChatTemplate::Jinja { .. }));
    let msgs = [Message::system("S"), Message::user("U")];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        ChatTemplate::ChatMl.render(&msgs, true).unwrap()
    );
    assert_eq!(
        ChatTemplate::ChatMl.render(&msgs, true).unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
    // Without a system message the model's template adds its own.
    let only_user = t.render(&[Message::user("U")], false).unwrap();
    assert!(
        only_user.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    );
    assert_eq!(t.eos_markers(), vec!["<|im_end|>".to_string()]);
}

#[test]
fn python_string_methods_and_raise_exception_work() {
    let cfg = r#"{"chat_template": "{% for m in messages %}{% if m.role not in ['user','system'] %}{{ raise_exception('bad role') }}{% endif %}[{{ m.content.strip() | upper }}]{% endfor %}"}"#;
    let t = ChatTemplate::from_tokenizer_config(cfg, ChatTemplate::ChatMl).unwrap();
    assert_eq!(t.render(&[Message::user("  hi ")], false).unwrap(), "[HI]");
    let bad = Message {
        role: "tool".into(),
        content: "x".into(),
    };
    assert!(t
        .render(&[bad], false)
        .unwrap_err()
        .to_string()
        .contains("bad role"));
    assert_eq!(
        ChatTemplate::from_tokenizer_config("{}", ChatTemplate::Llama3).unwrap(),
        ChatTemplate::Llama3
    );
    assert!(ChatTemplate::from_tokenizer_config("{", ChatTemplate::Llama3).is_err());
}

#[test]
fn rendering_is_byte_identical_and_golden() {
    let env = SatEnv;
    let p = env.problem(7).unwrap();
    let a = env.render(&p, &ChatTemplate::ChatMl).unwrap();
    let b = env
        .render(&env.problem(7).unwrap(), &ChatTemplate::ChatMl)
        .unwrap();
    assert_eq!(a, b);
    assert!(a.starts_with("<|im_start|>system\nYou are given a problem."));
    assert!(a.contains("<|im_start|>user\nSolve this 3-SAT problem."));
    assert!(a.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    let l = env.render(&p, &ChatTemplate::Llama3).unwrap();
    assert!(l.starts_with("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"));
}
