"""The one import of Ray: a clear error when the ``recog[ray]`` extra is missing, and a local start.

Example:
    >>> ray = require_ray("recog serve --ray")      # doctest: +SKIP
"""

from __future__ import annotations

import os
from types import ModuleType

from recog.errors import ConfigError

INSTALL_HINT = "pip install 'recog[ray]' (Ray Serve and Ray Data)"


def require_ray(what: str) -> ModuleType:
    """``ray``, or a :class:`ConfigError` naming ``what`` needed it and the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{what} needs Ray, which is not installed.", hint=INSTALL_HINT) from None
    return ray


def init_ray(what: str, *, num_cpus: int | None = None) -> ModuleType:
    """Connect to the cluster in ``$RAY_ADDRESS`` (or an already running one), else start Ray on this machine.

    A local start uses 127.0.0.1 as the node address and starts no dashboard. Ray's GCS server
    still listens on every interface (Ray 2.60 protects it with token authentication, on by
    default); firewall its port on a shared network.
    """
    ray = require_ray(what)
    if ray.is_initialized():
        return ray
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    return ray
