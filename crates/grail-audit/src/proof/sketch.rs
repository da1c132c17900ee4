//! Sketching a corpus: the residues of every position under each rule, computed in
//! batches, through the KV cache, or after another prompt.

use tch::{Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::{InferError, Progress};

use super::corpus::Corpus;
use super::rules::SketchRule;

/// Residues of every position of every sequence, per rule: `[rule][sequence]` → flat
/// `width` residues per position.
pub type Sketches = Vec<Vec<Vec<u32>>>;

fn sketch_rows(rules: &[&dyn SketchRule], hidden: &Tensor, len: usize, out: &mut [Vec<Vec<u32>>]) {
    let h = hidden.size()[1] as usize;
    let flat = Vec::<f32>::try_from(
        hidden
            .narrow(0, 0, len as i64)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default();
    for (r, rule) in rules.iter().enumerate() {
        let mut row = Vec::with_capacity(len * rule.width());
        for p in 0..len {
            rule.sketch(&flat[p * h..(p + 1) * h], &mut row);
        }
        out[r].push(row);
    }
}

/// How the hidden states are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// One forward over `batch` right-padded sequences at a time.
    Batched(usize),
    /// Prompt prefilled, then the completion one token at a time through the KV cache.
    Incremental,
}

/// Sketches of every position of `corpus` under `rules`, computed by `model` as `pass`
/// says. `prompt_swap[i] = Some(j)` runs sequence i's completion after prompt j instead
/// (the completion positions are then reported at sequence i's own positions).
pub fn sketch_corpus(
    model: &Model,
    corpus: &Corpus,
    rules: &[&dyn SketchRule],
    pass: Pass,
    prompt_swap: Option<&dyn Fn(usize) -> usize>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Sketches, InferError> {
    let mut out: Sketches = vec![Vec::new(); rules.len()];
    let n = corpus.sequences.len();
    let device = model.device();
    let tokens_of = |i: usize| -> (Vec<u32>, usize) {
        match prompt_swap {
            Some(swap) => {
                let j = swap(i);
                let completion = &corpus.sequences[i][corpus.prompt_lens[i]..];
                let prompt = &corpus.sequences[j][..corpus.prompt_lens[j]];
                (
                    prompt.iter().chain(completion).copied().collect(),
                    prompt.len(),
                )
            }
            None => (corpus.sequences[i].clone(), corpus.prompt_lens[i]),
        }
    };
    tch::no_grad(|| -> Result<(), InferError> {
        let mut i = 0;
        while i < n {
            progress(Progress::new("sketching", i as u64, n as u64));
            // Batched: the next `b` sequences. Incremental: the next run of sequences that
            // share a prompt (decoded together after one prefill, as a miner does).
            let end = match pass {
                Pass::Batched(b) => (i + b.max(1)).min(n),
                Pass::Incremental => {
                    let prompt = &corpus.sequences[i][..corpus.prompt_lens[i]];
                    (i + 1..n)
                        .take_while(|&j| {
                            prompt_swap.is_none()
                                && &corpus.sequences[j][..corpus.prompt_lens[j]] == prompt
                        })
                        .last()
                        .map_or(i + 1, |j| j + 1)
                }
            };
            let group: Vec<(Vec<u32>, usize)> = (i..end).map(tokens_of).collect();
            for (seq, _) in &group {
                model.check_tokens(seq, 0)?;
            }
            let longest = group.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
            let hidden = match pass {
                Pass::Batched(_) => {
                    let mut ids = vec![0i64; group.len() * longest];
                    for (r, (s, _)) in group.iter().enumerate() {
                        for (c, &t) in s.iter().enumerate() {
                            ids[r * longest + c] = t as i64;
                        }
                    }
                    let input = Tensor::from_slice(&ids)
                        .to_device(device)
                        .view([group.len() as i64, longest as i64]);
                    model.hidden_states(&input, None)
                }
                Pass::Incremental => {
                    let prompt_len = group[0].1;
                    let prompt: Vec<i64> =
                        group[0].0[..prompt_len].iter().map(|&t| t as i64).collect();
                    let mut cache = model.new_cache(1, longest);
                    let prefill = model.hidden_states(
                        &Tensor::from_slice(&prompt).to_device(device).view([1, -1]),
                        Some(&mut cache),
                    );
                    cache.select_rows(&vec![0i64; group.len()]);
                    let mut parts = vec![prefill.expand([group.len() as i64, -1, -1], false)];
                    for step in prompt_len..longest {
                        // Rows already past their end feed a dummy token; causal attention
                        // keeps it away from their real positions.
                        let column: Vec<i64> = group
                            .iter()
                            .map(|(s, _)| s.get(step).map_or(0, |&t| t as i64))
                            .collect();
                        let input = Tensor::from_slice(&column).to_device(device).view([-1, 1]);
                        parts.push(model.hidden_states(&input, Some(&mut cache)));
                    }
                    Tensor::cat(&parts, 1)
                }
            };
            for (r, (seq, prompt_len)) in group.iter().enumerate() {
                let row = hidden.get(r as i64);
                match prompt_swap {
                    // Re-align: sequence i's positions = its own prompt, then the completion.
                    Some(_) => {
                        let own_prompt = corpus.prompt_lens[i + r];
                        let completion = seq.len() - prompt_len;
                        let zeros = Tensor::zeros(
                            [own_prompt as i64, row.size()[1]],
                            (Kind::Float, row.device()),
                        );
                        let aligned = Tensor::cat(
                            &[
                                zeros,
                                row.narrow(0, *prompt_len as i64, completion as i64)
                                    .to_kind(Kind::Float),
                            ],
                            0,
                        );
                        sketch_rows(rules, &aligned, own_prompt + completion, &mut out);
                    }
                    None => sketch_rows(rules, &row, seq.len(), &mut out),
                }
            }
            i += group.len();
        }
        progress(Progress::new("sketching", n as u64, n as u64));
        Ok(())
    })?;
    Ok(out)
}
