"""Reads what examples/tensorboard_demo.rs wrote with TensorBoard's own event accumulator and
checks its tags, steps and values: proof that real TensorBoard reads descent's event files."""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
want = sorted(["loss/train", "loss/test", "accuracy/test", "lr", "samples_per_second"])
assert tags == want, f"tags {tags}, expected {want}"
formulas = {
    "loss/train": lambda e: 1.0 / e,
    "loss/test": lambda e: 1.5 / e,
    "accuracy/test": lambda e: 0.9 + 0.01 * e,
    "lr": lambda e: 0.03,
    "samples_per_second": lambda e: 1000.0 * e,
}
for tag, f in formulas.items():
    events = acc.Scalars(tag)
    steps = [ev.step for ev in events]
    assert steps == [938 * e for e in range(1, 6)], f"{tag}: steps {steps}"
    for e, ev in zip(range(1, 6), events):
        assert abs(ev.value - f(e)) <= 1e-6 * max(1.0, abs(f(e))), f"{tag} step {ev.step}: {ev.value}"
print(f"tensorboard read {len(tags)} tags x 5 steps back as written")
