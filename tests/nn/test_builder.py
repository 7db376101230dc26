import pytest

from dydet.nn.builder import build_dual_graph, load_model_yaml, resolve_model_yaml


def test_resolve_scaled_names():
    assert resolve_model_yaml("dy-yolo11n.yaml").name == "dy-yolo11.yaml"
    assert resolve_model_yaml("dy-yolov8x.yaml").name == "dy-yolov8.yaml"
    assert load_model_yaml("dy-yolo11s.yaml")["scale"] == "s"


def test_one_resolver_finds_every_familys_scaled_names():
    import dydet.nn.rcnn  # noqa: F401  (the R-CNN family registers its names with the one resolver)

    assert resolve_model_yaml("dy-faster-rcnn-r50.yaml").name == "dy-faster-rcnn.yaml"
    assert resolve_model_yaml("dy-yolo11n-s.yaml").name == "dy-yolo11.yaml"
    assert not hasattr(dydet.nn.rcnn.config, "resolve_rcnn_yaml")  # no second resolver


def test_unknown_model_names_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="dy-yolo11.yaml"):
        resolve_model_yaml("dy-yolo99q.yaml")


def test_static_yaml_is_rejected(tmp_path):
    static = tmp_path / "plain.yaml"
    static.write_text("nc: 2\nbackbone: []\nhead: []\n")
    with pytest.raises(ValueError, match="no 'dynamic:' section"):
        load_model_yaml(static)
    with pytest.raises(ValueError, match="static model of dy-yolov7-tiny.yaml .*StaticYOLO"):
        load_model_yaml("yolov7-tiny.yaml")


def test_dual_graph_layout_yolo11():
    d = load_model_yaml("dy-yolo11n.yaml")
    layers, g = build_dual_graph(d)
    rows = layers["backbone"]
    nb, nh = len(d["backbone"]), len(d["head"])
    assert rows[0][2] == "nn.Identity"
    assert g.b1 == range(0, 1 + nb) and g.easy == range(1 + nb, 1 + nb + nh)
    assert g.stages == (1, 3, 5, 7, 11)
    taps = rows[g.hard.start : g.hard.start + 5]
    assert [t[2] for t in taps] == ["CBLinear"] * 5
    # level l emits one chunk per B2 level <= l, widths scaled for n: 64*0.25, 128*.25, 256*.25, 512*.25, 1024*.25
    assert [t[3][0] for t in taps] == [[16], [16, 32], [16, 32, 64], [16, 32, 64, 128], [16, 32, 64, 128, 256]]
    assert [t[0] for t in taps] == [1, 3, 5, 7, 11]
    b2 = rows[g.hard.start + 5 :]
    assert b2[0][0] == 0  # B2 re-reads the input image
    fuses = [(i, r) for i, r in enumerate(rows) if r[2] == "CBFuse"]
    assert len(fuses) == 5
    # dense higher-level composition: level k sums the chunks of every B1 level >= k
    for k, (i, r) in enumerate(fuses):
        assert r[0][:-1] == [g.hard.start + lvl for lvl in range(k, 5)] and r[0][-1] == -1
        assert r[3] == [[k] * (5 - k)]
        assert rows[i - 1][2] == "Conv" and rows[i - 1][3][2] == 2  # right after each stride-2 downsampling
    # both heads end in Detect; H2 reads B2's layers, not B1's
    assert rows[g.easy.stop - 1][2] == rows[-1][2] == "Detect"
    assert all(f >= g.hard.start for f in rows[-1][0])


def test_after_b1_names_each_routes_layers():
    _, g = build_dual_graph(load_model_yaml("dy-yolo11n.yaml"))
    assert g.after_b1("easy") == g.easy and g.after_b1("hard") == g.hard
    for bad in (None, "medium"):
        with pytest.raises(ValueError, match="'easy' or 'hard'"):
            g.after_b1(bad)


def test_cblinear_widths_follow_scale():
    for scale, p5 in (("s", 512), ("m", 512), ("x", 768)):
        layers, g = build_dual_graph(load_model_yaml(f"dy-yolo11{scale}.yaml"))
        assert layers["backbone"][g.hard.start + 4][3][0][-1] == p5


def test_bad_stages_are_rejected():
    d = load_model_yaml("dy-yolo11n.yaml")
    d["dynamic"]["stages"] = [4, 2]
    with pytest.raises(ValueError, match="strictly increasing"):
        build_dual_graph(d)
