/* Found only when no libtorch is set up: the real torch/torch.h comes first when it is. */
#error "grail-rs: libtorch was not found. Run `cargo xtask setup` in the grail-rs checkout (it installs PyPI torch==2.11.0 into ~/.cache/grail-rs and links .libtorch), or set LIBTORCH=/path/to/libtorch (2.11.0), or LIBTORCH_USE_PYTORCH=1 with torch==2.11.0 importable by python. Then build again."
/* Stop here: a missing include is fatal, so the compiler prints nothing after this. */
#include "grail-rs: libtorch is not set up, see the message above"
