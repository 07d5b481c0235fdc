"""A live loss chart for a training job: train loss as a line, eval loss as points, over the step axis.

    chart.show(job.metrics())   # records from metrics.jsonl (step, loss, eval_loss, ...)
"""

from textual_plotext import PlotextPlot


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart { height: 9; min-height: 6; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.points = 0  # how many loss values are on the chart (tests and the status line read it)

    def show(self, records: list[dict]) -> None:
        train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None and r.get("step") is not None]
        evals = [(r["step"], r["eval_loss"]) for r in records
                 if r.get("eval_loss") is not None and r.get("step") is not None]
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        plt.xlabel("step")
        if train:
            plt.plot([s for s, _ in train], [v for _, v in train], label="train", marker="braille")
        if evals:
            plt.scatter([s for s, _ in evals], [v for _, v in evals], label="eval", marker="x")
        self.points = len(train) + len(evals)
        self.refresh()
