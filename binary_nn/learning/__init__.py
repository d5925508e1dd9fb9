"""The learning tier: rules (GD, DFA, DRTP), the loss, the optimizer and the training step."""

from .loss import LOSSES, MSELoss, one_hot
from .optim import SGD
from .rules import DFA, DRTP, GD, RULES, DirectFeedbackRule, LearningRule
from .step import StepResult, train_step

__all__ = [
    "DFA",
    "DRTP",
    "GD",
    "LOSSES",
    "RULES",
    "SGD",
    "DirectFeedbackRule",
    "LearningRule",
    "MSELoss",
    "StepResult",
    "one_hot",
    "train_step",
]
