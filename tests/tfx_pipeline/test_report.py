"""report.json, report.md and the plots, from a hand-made set of model results."""

import json

from tfx_pipeline import report


def _model(ndcg, params):
    return {"recall@10": 0.1, "ndcg@10": ndcg, "recall@100": 0.5, "precision@10": 0.2, "params": params,
            "bytes": 10 * params, "gzip_bytes": 5 * params, "latency_ms_p50": 0.3}


def test_report_with_students_has_the_gain_plots_and_curves(tmp_path):
    models = {"popularity": _model(0.25, 1683), "teacher": _model(0.45, 20000),
              "student_no_kd": _model(0.40, 100), "student_kd": _model(0.44, 100)}
    curves = {"teacher": {"loss": [3.0, 2.0], "val_loss": [3.1, 2.5]},
              "student_kd": {"loss": [2.0, 1.0, 0.9], "val_ndcg@10": [0.1, 0.2, 0.15]},
              "student_no_kd": {"loss": [2.0, 1.5], "val_ndcg@10": [0.1, 0.12]}}
    built = report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models, curves)
    report.write_report(str(tmp_path), built)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["models"]["student_kd"]["ndcg@10"] == 0.44 and saved["models"]["tflite"] is None
    assert saved["training_curves"]["student_kd"]["val_ndcg@10"] == [0.1, 0.2, 0.15]
    markdown = (tmp_path / "report" / "report.md").read_text()
    # 0.44 / 0.40 = 1.100; 20000 / 100 = 200
    assert "student_kd ndcg@10 = 1.100 x student_no_kd; teacher params = 200 x student" in markdown
    for name in ("quality_vs_params.png", "training_curves.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_before_the_students_has_no_gain_line_and_no_curves_plot(tmp_path):
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], {"popularity": _model(0.25, 10)})
    report.write_report(str(tmp_path), built)
    assert "distillation" not in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "quality_vs_params.png").exists()
    assert not (tmp_path / "report" / "training_curves.png").exists()
