"""Flask extensions as module globals, bound to an app in create_app()."""

from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Storage, switches and headers come from the RATELIMIT_* settings at init_app time.
limiter = Limiter(key_func=get_remote_address)

# Pages, styles and scripts gzip (or brotli, zstd) to a fraction; the form's weight budget
# (docs/embedding.md) counts compressed bytes.
compress = Compress()
