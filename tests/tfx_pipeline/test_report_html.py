"""report/index.html and its plots: every table, plain names with keys, MB by hand, plots inline,
and no overlapping text on the rendered figures."""

import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from tfx_pipeline import report, report_html, report_plots  # noqa: E402

KEYS = ("popularity", "ease", "trending", "student_no_kd", "teacher", "student_kd", "student_compressed",
        "tflite_float", "tflite")


def _model(ndcg, size):
    return {"recall@10": 0.3, "ndcg@10": ndcg, "recall@100": 0.6, "precision@10": 0.25, "params": size // 4,
            "bytes": size, "gzip_bytes": size // 2, "latency_ms_p50": 0.25,
            "beyond_accuracy": {"coverage": 0.2, "gini": 0.8, "novelty": 9.5, "diversity": 0.7, "popular_share": 0.6}}


def _report():
    models = {key: _model(0.40 + i / 100, 100_000 * (i + 1)) for i, key in enumerate(KEYS)}
    for key in ("popularity", "ease", "trending"):
        for size_key in ("params", "bytes", "gzip_bytes", "latency_ms_p50"):
            models[key][size_key] = None
    models["tflite"].update(bytes=120_112, gzip_bytes=52_716)
    curves = {"teacher": {"loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.5, 2.4]},
              "student_kd": {"loss": [20.0, 10.0, 9.0], "val_ndcg@10": [0.1, 0.2, 0.25]},
              "student_no_kd": {"loss": [2.0, 1.5], "val_ndcg@10": [0.1, 0.12]},
              "student_compressed": {"loss": [0.5, 0.4]}}
    built = report.build_report("<shop & co>", {"method": "temporal"}, {"total": 100.0, "Transform": 25.0},
                                {"interactions.csv": {"rows": 1000, "bad": {"unknown item": 3}}}, ["Transform"],
                                models, curves, blessing={"blessed": True, "reason": "0.48 >= 0.98 x 0.48"},
                                pushed={"serving": "/r/serving/recdistill/1", "mobile": "/r/mobile/1"})
    built["run"] = {"recdistill": "0.1.0", "git_commit": None, "config_digest": "abc", "seeds": {"teacher.seed": 42},
                    "versions": {"tensorflow": "2.16.2"}, "machine": {"cores": 2, "memory_gib": 23.5},
                    "inputs": {"interactions.csv": {"sha256": "f" * 64, "bytes": 2_500_000, "rows": 1000}},
                    "started": "a", "ended": "b"}
    return built


def test_the_overlap_check_finds_overlapping_and_cut_off_text():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.annotate("student_kd", (0.5, 0.5))
    ax.annotate("student_compressed", (0.5, 0.5))
    fig.text(0.95, 0.5, "cut off at the right edge")
    found = report_plots.overlapping_text(fig)
    plt.close(fig)
    assert ("student_kd", "student_compressed") in found
    assert ("cut off at the right edge", "<figure edge>") in found


def test_the_report_plots_have_no_overlapping_text():
    data = _report()
    for figure in (report_plots.quality_figure(data["models"]), report_plots.training_figure(data["training_curves"])):
        figure.tight_layout()
        assert report_plots.overlapping_text(figure) == []
        labels = [t.get_text() for t in figure.findobj(matplotlib.text.Text)]
        assert len([t for t in labels if t.endswith(" - ease")]) <= 1  # a baseline once: its line
        plt.close(figure)
        assert any("int8 TFLite (phone) - tflite" in t or "Distilled student (float)" in t for t in labels)


def test_the_page_has_every_table_plain_names_mb_and_the_plots_inline():
    data = _report()
    plots, problems = report_plots.render_plots(data["models"], data["training_curves"])
    assert problems == []
    page = report_html.render(data, plots)
    for title in ("Which model is best?", "Beyond accuracy", "Size and speed", "Data quality",
                  "Time per component", "Training", "What produced this run"):
        assert f"<h2>{title}" in page, title
    assert 'int8 TFLite (phone) <span class="key">- tflite</span>' in page
    assert "&lt;shop &amp; co&gt;" in page and "<shop" not in page  # escaped
    # 120,112 bytes = 0.120 MB, gzip 52,716 = 0.053 MB; trending is the strongest baseline at 0.42:
    # tflite 0.48 / 0.42 = 1.143
    assert "0.120 MB (0.053 MB gzipped)" in page and "1.143 x Trending (baseline)" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(i) for i in images) == sorted(plots.values()) and len(images) == 2
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from a network
    # Transform took 25 of 100 s
    assert "<td>Transform</td><td>25.0</td><td>25%</td>" in page


def test_a_plot_with_overlapping_labels_is_refused():
    fig, ax = plt.subplots()
    ax.annotate("a label", (0.5, 0.5))
    ax.annotate("a label too", (0.5, 0.5))
    with pytest.raises(RuntimeError, match="overlapping labels"):
        report_plots._png(fig)


def test_a_report_from_an_older_run_still_gets_its_page_and_tables(tmp_path):
    """Keys added later (run, beyond_accuracy, sizes, bad counts) may be absent or null."""
    from tfx_pipeline import report_files

    old = {"dataset": "d", "split": {}, "wall_seconds": {"total": 5.0}, "data_quality": {"items.csv": {"rows": 3}},
           "models": {"ease": {"ndcg@10": 0.4}, "student_kd": {"ndcg@10": 0.45}, "tflite_float": {"ndcg@10": 0.45},
                      "tflite": {"ndcg@10": None, "bytes": None}},
           "cold_items": {"items": 5, "share": 0.1, "models": {"random": {"ndcg@10": 0.1}}}, "blessed": False}
    report_files.write_report(str(tmp_path), old)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Distilled student (float)" in page and "<td>items.csv</td><td>3</td>" in page
