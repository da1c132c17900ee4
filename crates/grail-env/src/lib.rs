//! grail-env: the environments miners and validators both run.
//!
//! An environment turns a prompt id into a problem, renders it for the model and scores a
//! completion into a reward vector. It owns the SAT and math generators, prompt rendering,
//! answer parsing and reward weights. It does no I/O beyond reading a dataset file the
//! user points to, and knows nothing of chain, storage or torch.
//!
//! Status: scaffold; the environments land with their own issue.
