"""The config of `JoblibTemplateLauncher`: Hydra's joblib launcher config, this launcher's
target and `largest_first`, stored as `hydra/launcher=joblib_template`
(conf/hydra/launcher/cores.yaml builds on it).

No `from __future__ import annotations` here: Hydra's plugin scan executes this module
outside `sys.modules`, where a dataclass with string annotations cannot be made.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf


@dataclass
class JoblibTemplateLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.widthlab_launcher.JoblibTemplateLauncher"
    # Swept keys whose larger values make longer jobs: jobs start in descending order of
    # them (src/hydra_plugins/widthlab_launcher/__init__.py); empty: the sweep's own order.
    largest_first: list[str] = field(default_factory=list)


ConfigStore.instance().store(
    group="hydra/launcher",
    name="joblib_template",
    node=JoblibTemplateLauncherConf,
    provider="widthlab",
)
