"""Workdirs: the layout of a training run's directory (``layout``) and of an imported model
(``imported``), its checkpoints (``checkpoints``), and using them (``restore``). No other
module spells a workdir's file names."""

from llm_jax.workdir.restore import CHECKPOINTS, Trained, load, pretrained_params

__all__ = ['CHECKPOINTS', 'Trained', 'load', 'pretrained_params']
