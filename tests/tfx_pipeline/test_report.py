"""report.json, report.md and the plots, from a hand-made set of model results."""

import json

from tfx_pipeline import report, report_files


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
    report_files.write_report(str(tmp_path), built)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["models"]["student_kd"]["ndcg@10"] == 0.44 and saved["models"]["tflite"] is None
    assert saved["training_curves"]["student_kd"]["val_ndcg@10"] == [0.1, 0.2, 0.15]
    markdown = (tmp_path / "report" / "report.md").read_text()
    # 0.44 / 0.40 = 1.100; 20000 / 100 = 200
    assert "student_kd ndcg@10 = 1.100 x student_no_kd; teacher params = 200 x student" in markdown
    for name in ("quality_vs_bytes.png", "training_curves.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_before_the_students_has_no_gain_line_and_no_curves_plot(tmp_path):
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], {"popularity": _model(0.25, 10)})
    report_files.write_report(str(tmp_path), built)
    assert "distillation" not in (tmp_path / "report" / "report.md").read_text()
    # baselines alone: nothing to place against them (they are the plot's lines), so no plot either
    assert not (tmp_path / "report" / "quality_vs_bytes.png").exists()
    assert not (tmp_path / "report" / "training_curves.png").exists()
    assert (tmp_path / "report" / "index.html").exists()


def test_every_model_is_compared_with_the_strongest_baseline(tmp_path):
    models = {"popularity": _model(0.25, 1683), "ease": _model(0.48, 1683 * 1682), "trending": None,
              "student_kd": _model(0.456, 100), "tflite": _model(0.4488, 100)}
    baselines = {"ease": {"l2": 500.0, "grid": {"100": 0.40, "500": 0.42}, "skipped": None, "seconds": 3.0},
                 "trending": {"days": 30, "window_start": None, "skipped": "not a temporal split (stratified)"}}
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], models, baselines=baselines)
    assert list(built["models"])[:3] == ["popularity", "ease", "trending"] and built["models"]["trending"] is None
    assert built["baselines"] == baselines
    # 0.25 / 0.48 = 0.5208; 0.456 / 0.48 = 0.95; 0.4488 / 0.48 = 0.935
    assert built["vs_best_baseline"] == {"best": "ease", "ndcg@10": {"popularity": 0.5208, "ease": 1.0,
                                                                       "student_kd": 0.95, "tflite": 0.935}}
    report_files.write_report(str(tmp_path), built)
    assert json.loads((tmp_path / "report" / "report.json").read_text())["vs_best_baseline"]["best"] == "ease"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| ndcg@10 / ease |" in markdown and "| 0.950 x |" in markdown
    assert "ease: l2 500, picked by eval ndcg@10 (100 0.4000, 500 0.4200)" in markdown
    assert "trending: skipped: not a temporal split (stratified)" in markdown
    header = next(line for line in report.render(built).splitlines() if line.startswith("model "))
    assert header.endswith("ndcg@10 / ease")  # the printed table has the column too


def test_without_baselines_there_is_no_ratio():
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], {"teacher": _model(0.3, 10)})
    assert built["vs_best_baseline"] is None and built["baselines"] is None
    assert "ndcg@10 / best baseline" in report.render(built)


def test_resources_per_component_are_kept_and_tabled(tmp_path):
    resources = {"Transform": {"cpu_seconds": 12.25, "peak_rss_mib": 1536.4},
                 "Trainer": {"cpu_seconds": 3.0, "peak_rss_mib": None}}
    built = report.build_report("toy", {}, {"total": 20.0, "Transform": 15.0, "Trainer": 4.0}, {}, ["A"],
                                resources=resources, peak_rss_mib=2048.0)
    assert built["resources"] == resources and built["peak_rss_mib"] == 2048.0
    report_files.write_report(str(tmp_path), built)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["resources"]["Transform"]["peak_rss_mib"] == 1536.4 and saved["wall_seconds"]["total"] == 20.0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| component | wall s | cpu s | peak MiB |" in markdown
    # 12.25 -> "12.2" (round half to even), 1536.4 -> "1,536"; total: no CPU column, the run's peak
    assert "| Transform | 15.0 | 12.2 | 1,536 |" in markdown and "| Trainer | 4.0 | 3.0 | - |" in markdown
    assert "| total | 20.0 | - | 2,048 |" in markdown


def test_a_report_without_resources_keeps_the_wall_table():
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"])
    assert built["resources"] is None and built["peak_rss_mib"] is None
    assert "| component | wall s |" in report.render(built, markdown=True)
    assert "cpu s" not in report.render(built)


def test_the_cold_item_table_follows_the_main_tables_order():
    cold = {"share": 0.1, "items": 168, "models": {
        "student_kd": {"ndcg@10": 0.12, "recall@10": 0.2, "top100_share": 0.31, "users": 90, "positives": 400},
        "text_knn": {"ndcg@10": 0.08, "recall@10": 0.15, "top100_share": 0.0, "users": 90, "positives": 400},
        "teacher": {"ndcg@10": 0.15, "recall@10": 0.25, "top100_share": 0.4, "users": 90, "positives": 400},
        "random": {"ndcg@10": 0.01, "recall@10": 0.06, "top100_share": 0.05, "users": 90, "positives": 400}}}
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], {"popularity": _model(0.25, 10)},
                                cold_items=cold)
    assert list(built["cold_items"]["models"]) == ["random", "text_knn", "teacher", "student_kd"]
    text = report.render(built)
    assert "cold items: 168 items (10.0% of the catalog) held out of training; 90 test users with 400" in text
    row = next(line for line in text.splitlines() if line.startswith("teacher ") and "0.1500" in line)
    assert row.split() == ["teacher", "0.1500", "0.2500", "0.4000"]
    assert report.build_report("toy", {}, {"total": 1.0}, {}, ["A"])["cold_items"] is None


def test_spans_say_where_each_model_started_and_what_prior_it_carries():
    drift = {"newest_span": 3, "previous_span": 2, "decision": "warm", "reason": "no drift beyond its bounds"}
    warm_start = {"teacher": {"from": "/b/7", "reason": "warm start from the last blessed run: no drift",
                              "items_kept": 1200, "items_new": 40},
                  "students": {"from": "/b/7", "reason": "warm start",
                               "student_kd": {"started": "warm", "items_kept": 1200, "items_new": 40, "users_kept": 900,
                                              "users_new": 80, "features_kept": ["item_genres_indices"],
                                              "features_fresh": ["item_title_tokens"]}},
                  "compression": {"started": "warm", "prune_epochs": 6, "qat_epochs": 1}}
    prior = {"mode": "picked", "weight": 0.3, "cold_weight": 10.0, "days": 28, "val_ndcg@10": {"0.0": 0.2, "0.3": 0.25},
             "cold_val_ndcg@10": {"0.0": 0.05, "10.0": 0.125}}
    built = report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"], drift=drift,
                                warm_start=warm_start, recency_prior=prior)
    assert built["recency_prior"] == prior and built["warm_start"] == warm_start
    text = report.render(built)
    assert "teacher: warm start from the last blessed run: no drift (1,200 items kept, 40 new)" in text
    assert "students: warm start (1,200 items and 900 users kept, 40 and 80 new, fresh features: item_title_tokens)" \
        in text
    assert "compression: warm: 6 pruning and 1 QAT epochs" in text
    assert "no phase one" not in text
    # a warm run without phase one (teacher.warm_start.phase_one: false) says how long each trained instead
    went = {**warm_start, "teacher": {**warm_start["teacher"], "phase_one": False, "epochs": 5},
            "students": {**warm_start["students"],
                         "student_kd": {**warm_start["students"]["student_kd"], "phase_one": False, "epochs": 6}}}
    went_text = report.render(report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"],
                                                  drift=drift, warm_start=went))
    assert "teacher: warm start from the last blessed run: no drift (1,200 items kept, 40 new); no phase one: " \
           "5 epochs on train and eval" in went_text
    assert "40 and 80 new, fresh features: item_title_tokens); no phase one: 6 epochs on train and eval" in went_text
    assert "recency prior of the deployed models: weight x log(1 + an item's interactions in the last 28 days): " \
           "known users 0.3, picked on the eval split (ndcg@10 0.2500 against 0.2000 without); cold users 10.0, " \
           "picked on the eval split (ndcg@10 0.1250 against 0.0500 without)" in text
    # a weight picked on the served model's backtest says so, with its own curve
    backtested = {**prior, "weight": 1.0, "picked_on": {"weight": "backtest", "cold_weight": "eval"},
                  "backtest": {"known": {"users": 84, "weight": 1.0, "ndcg@10": {"0.0": 0.1266, "1.0": 0.1832}},
                               "cold": {"users": 3}}}
    text = report.render(report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"],
                                             recency_prior=backtested))
    assert "known users 1.0, picked on the served model's backtest of the newest span (84 users) (ndcg@10 " \
           "0.1832 against 0.1266 without); cold users 10.0, picked on the eval split" in text
    # the largest weight, where the best did not beat it beyond the backtest's noise: the line says so
    fallen = {**backtested, "weight": 10.0, "backtest": {
        "known": {"users": 84, "weight": 10.0, "best": 1.0, "ndcg@10": {"0.0": 0.1266, "1.0": 0.1832, "10.0": 0.18}},
        "cold": {"users": 3}}}
    text = report.render(report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"],
                                             recency_prior=fallen))
    assert "known users 10.0, picked on the served model's backtest of the newest span (84 users) (ndcg@10 " \
           "0.1800 against 0.1266 without; the best, 1.0 (0.1832), not better beyond the noise); cold users" in text
    # the prior counted to the push; the test figures to the test's start: the line gives both dates
    counted = {**prior, "counted_to": {"exported": "2026-12-04T23:10:00Z", "test_figures": "2026-11-29T08:00:00Z"}}
    text = report.render(report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"],
                                             recency_prior=counted))
    assert "weight x log(1 + an item's interactions in the last 28 days to 2026-12-04, the push; the test figures " \
           "count to 2026-11-29, the test's start): known users 0.3, picked on the eval split" in text
    cold_only = report.build_report("spans", {"method": "newest_span"}, {"total": 1.0}, {}, ["A"], drift=drift,
                                    warm_start=warm_start, recency_prior={**prior, "weight": 0.0})
    assert cold_only["recency_prior"]["cold_weight"] == 10.0  # the cold users' prior alone is still carried
    # none, or 0 picked for both: the deployed models carry no prior: no key, no line
    for unused in ({"mode": "none", "weight": 0.0, "cold_weight": 0.0},
                   {"mode": "picked", "weight": 0.0, "cold_weight": 0.0, "days": 28}):
        flat = report.build_report("flat", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], recency_prior=unused)
        assert "recency_prior" not in flat and "recency prior" not in report.render(flat)


def test_the_compression_line_names_each_technique_and_what_it_did():
    models = {"student_kd": _model(0.40, 1000), "tflite_float": _model(0.40, 1000), "tflite": _model(0.396, 400)}
    models["tflite"].update(bytes=1400, gzip_bytes=800)  # against tflite_float's 10,000 bytes
    compression = {"config": {"rank": 8}, "prune": {"sparsity": {"all": 0.62}}, "int8": {"zero_share": 0.6},
                   "params_uncompressed": 1000,
                   "factorization": {"rank": 8, "full_rank_items": 0.5, "params": 400,
                                     "layers": {"user_id": {"rank": 8, "relative_error": 0.31},
                                                "scores": {"rank": 8, "relative_error": 0.12}}}}
    built = report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models,
                                compression=compression)
    assert built["compression"]["factorization"]["params_uncompressed"] == 1000
    assert built["compression"]["factorization"]["full_rank_items"] == 0.5
    text = report.render(built)
    assert ("compression techniques: factorization: user_id rank 8 (relative error 0.31), scores rank 8 (relative "
            "error 0.12); 1,000 -> 400 weights (0.40 x); pruning: 62% of the weights zero; int8: a byte a weight "
            "instead of four; together 0.140 x the uncompressed float TFLite's bytes, gzip 0.080 x") in text
    # a user table trained as two factors (student.user_rank), no compression rank: its own rank, exact
    compression["factorization"] = {"rank": None, "params": 1000,
                                    "layers": {"user_id": {"rank": 8, "relative_error": 0.0}}}
    trained = report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models,
                                  compression=compression)
    assert ("factorization: user_id rank 8 (relative error 0.00); 1,000 -> 1,000 weights (1.00 x); pruning"
            in report.render(trained))
    # mixed dimensions: the first items kept whole, in columns of the kernel or rows of a table (row 0 the unknown)
    compression["factorization"] = {"rank": 8, "params": 700, "layers": {
        "history_items": {"rank": 8, "relative_error": 0.2, "full_rank_rows": 421},
        "scores": {"rank": 8, "relative_error": 0.1, "full_rank_columns": 420}}}
    mixed = report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models,
                                compression=compression)
    assert ("factorization: history_items rank 8 after its first 420 items whole (relative error 0.20), scores rank "
            "8 after its first 420 items whole (relative error 0.10); 1,000 -> 700 weights (0.70 x)"
            in report.render(mixed))
    # without a rank: the line says so, and report.json has no factorization
    compression["factorization"] = {"rank": None, "params": 1000, "layers": {}}
    plain = report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models,
                                compression=compression)
    assert plain["compression"]["factorization"] is None
    assert "compression techniques: factorization: none (compression.rank); pruning" in report.render(plain)
    # a warm run that started at the served model's setting (half the sparsity, without factorization): gentler
    compression["gentler"] = {"min_kept": 0.99, "started_at": 2, "used": 0, "attempts": [
        {"rank": None, "target_sparsity": 0.375, "dense_sparsity": 0.175, "kept": 1.004}]}
    carried = report.render(report.build_report("toy", {"method": "stratified"}, {"total": 1.0}, {}, ["A"], models,
                                                compression=compression))
    assert ("compression techniques: gentler than configured (started at the setting the served model shipped; the "
            "eval split's ndcg@10 kept of student_kd: no factorization, sparsity 0.375 / 0.175: 1.004; "
            "compression.min_kept 0.99); factorization: none; pruning") in carried


def test_each_models_beyond_accuracy_is_tabled_and_kept_in_report_json():
    figures = {"coverage": 0.35, "gini": 0.8125, "novelty": 3.5, "diversity": None, "popular_share": 0.6}
    models = {"popularity": _model(0.25, 10), "tflite": {**_model(0.3, 20), "beyond_accuracy": figures}}
    built = report.build_report("toy", {}, {"total": 1.0}, {}, ["A"], models)
    assert json.loads(json.dumps(built))["models"]["tflite"]["beyond_accuracy"] == figures
    text = report.render(built, markdown=True)
    assert "| model | coverage@10 | gini@10 | novelty@10 | diversity@10 | popular_share@10 |" in text
    assert "| tflite | 0.3500 | 0.8125 | 3.5000 | - | 0.6000 |" in text
    assert "| popularity | " not in text.split("coverage@10")[1]  # no figures, no row
