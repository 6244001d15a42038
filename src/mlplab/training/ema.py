"""An exponential moving average of the weights (Polyak averaging), kept on the flat parameter buffer.

After every optimizer step the average moves towards the training weights by one `lerp_` over the
one flat buffer (a few hundred microseconds for the 512-512 model's 669,706 numbers here). Between
epochs the model holds the average, so that everything that reads the model there (validation,
early stopping's best weights, the NaN guard, checkpoints, the kept and saved model) sees the
averaged weights; the training weights wait in the other buffer and are swapped back in for the
next epoch's batches. A checkpoint saves both, so a resumed run stays bit-identical.

The decay ramps up as TensorFlow's ExponentialMovingAverage(num_updates) does, min(decay,
(1 + t) / (10 + t)) after t updates, so that a short run is not an average of mostly its
initial weights.
"""

from __future__ import annotations

import torch


class WeightAverage:
    """The average of the weights in `parameters` (one flat tensor), updated after each step."""

    def __init__(self, parameters: torch.Tensor, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.parameters = parameters
        self.decay = decay
        self.updates = 0
        # Whichever of the two the model does not hold: the training weights between epochs, the
        # average during an epoch's batches. At the start both are the initial weights.
        self.other = parameters.detach().clone()
        self.averaged = True  # the model holds the average
        self._scratch = torch.empty_like(self.other)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the training weights (which the model must hold)."""
        if self.averaged:
            raise RuntimeError("internal error: the average is updated while the model holds it")
        self.other.lerp_(self.parameters.data, 1 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def _swap(self) -> None:
        self._scratch.copy_(self.parameters.data)
        self.parameters.data.copy_(self.other)
        self.other.copy_(self._scratch)
        self.averaged = not self.averaged

    def use_average(self) -> None:
        """Put the averaged weights into the model (the training weights are kept aside)."""
        if not self.averaged:
            self._swap()

    def use_training_weights(self) -> None:
        """Put the training weights back into the model, for the optimizer's steps."""
        if self.averaged:
            self._swap()

    def training_weights(self) -> torch.Tensor:
        """The training weights, wherever they are now."""
        return self.other if self.averaged else self.parameters.data

    @torch.no_grad()
    def load(self, training_weights: torch.Tensor, updates: int) -> None:
        """Restore from a checkpoint, whose model weights (already loaded) are the average."""
        if training_weights.shape != self.other.shape:
            raise ValueError(f"the saved training weights have shape {tuple(training_weights.shape)}, "
                             f"the model's {tuple(self.other.shape)}")
        self.other.copy_(training_weights)
        self.updates = int(updates)
        self.averaged = True
