"""The learning tier: rules (GD, DFA, DRTP), losses, optimizers and the training step."""

from .loss import LOSSES, CrossEntropyLoss, Loss, MSELoss, one_hot
from .optim import OPTIMIZERS, SGD, Adam, Bop, CaseOptimizer, Optimizer
from .rules import DFA, DRTP, GD, RULES, DirectFeedbackRule, LearningRule
from .step import StepResult, train_step

__all__ = [
    "DFA",
    "DRTP",
    "GD",
    "LOSSES",
    "OPTIMIZERS",
    "RULES",
    "SGD",
    "Adam",
    "Bop",
    "CaseOptimizer",
    "CrossEntropyLoss",
    "DirectFeedbackRule",
    "LearningRule",
    "Loss",
    "MSELoss",
    "Optimizer",
    "StepResult",
    "one_hot",
    "train_step",
]
