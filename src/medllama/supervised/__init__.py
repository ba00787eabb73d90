"""The paper's supervised setting: task-specific tuning on each dataset's training split, scored beside zero-shot.

    result = finetune_task("tiny", "pubmedqa", model="models:/me-llama-tiny/1", output="runs/sup/pubmedqa")
    print(side_by_side([result]))
"""

from medllama.supervised.finetune import SupervisedResult, finetune_task
from medllama.supervised.report import register_tuned, side_by_side
from medllama.supervised.splits import TRAIN_SPLITS, Overlap, load_train, remove_test_overlap

__all__ = ["TRAIN_SPLITS", "Overlap", "SupervisedResult", "finetune_task", "load_train", "register_tuned",
           "remove_test_overlap", "side_by_side"]
