"""helpers.transfer: the offline task, the fallback line, and the download path with torchvision mocked
(the tests never touch the network)."""
import os

import pytest
import torch
from PIL import Image
from torch import nn

from helpers import transfer
from helpers.budget import get_budget
from helpers.transfer import SmallCNN, StagedNet, get_transfer_task


@pytest.fixture(scope="module")
def offline():
    return transfer.offline_task(get_budget("tiny"), "a test")


def test_offline_task(offline):
    assert offline.name == "offline" and offline.num_classes == 5
    assert offline.classes == ["plus", "x-cross", "horizontal stripes", "vertical stripes", "checkerboard"]
    images, labels = offline.pool.tensors
    assert images.shape[1:] == (3, 32, 32) and set(labels.tolist()) == set(range(5))
    assert offline.max_per_class == transfer.PLANS["tiny"].pool_per_class
    subset = offline.labelled(7)
    assert torch.bincount(subset.tensors[1]).tolist() == [7] * 5
    with pytest.raises(ValueError, match="available"):
        offline.labelled(offline.max_per_class + 1)


def test_pretrained_copies_are_fresh_and_learnt(offline):
    a, b = offline.pretrained(), offline.pretrained()
    assert a.head.out_features == 5 and a is not b
    for p, q in zip(a.stages.parameters(), offline._pretrained.stages.parameters()):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    scratch = offline.scratch()
    assert not torch.equal(next(scratch.stages.parameters()), next(a.stages.parameters()))
    # the pretraining moved the weights away from their seeded initialisation, and is reproducible
    torch.manual_seed(0)
    initial = SmallCNN(5)
    assert not torch.equal(next(initial.stages.parameters()), next(a.stages.parameters()))
    again = transfer.offline_task(get_budget("tiny"), "a test").pretrained()
    assert all(torch.equal(p, q) for p, q in zip(again.stages.parameters(), a.stages.parameters()))


def test_staged_net_features():
    net = SmallCNN(3)
    x = torch.randn(2, 3, 32, 32)
    assert net.features(x).shape == (2, 128) and net.features(x, upto="stage2").shape == (2, 32)
    assert net(x).shape == (2, 3) and isinstance(net, StagedNet)


def test_tiny_never_downloads(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(transfer, "pets_task", lambda *a, **k: pytest.fail("tried to download"))
    task = get_transfer_task("auto", get_budget("tiny"))
    out = capsys.readouterr().out
    assert task.name == "offline" and out.count("\n") == 1 and "never downloads" in out


def test_grading_never_downloads(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setattr(transfer, "pets_task", lambda *a, **k: pytest.fail("tried to download"))
    assert get_transfer_task("auto", get_budget("cpu")).name == "offline"      # nbgrader forces tiny anyway


def test_failed_download_falls_back_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)

    def offline_download(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(transfer, "pets_task", offline_download)
    monkeypatch.setattr(transfer, "PLANS", {**transfer.PLANS, "cpu": transfer.PLANS["tiny"]})
    task = get_transfer_task("auto", get_budget("cpu"))
    out = capsys.readouterr().out
    assert task.name == "offline" and out.count("\n") == 1
    assert "falling back" in out and "OSError: no network" in out
    with pytest.raises(RuntimeError, match="COURSE_TRANSFER=offline"):
        get_transfer_task("pets", get_budget("cpu"))


def test_unknown_source(monkeypatch):
    monkeypatch.setenv("COURSE_TRANSFER", "imagenet")
    with pytest.raises(ValueError, match="COURSE_TRANSFER"):
        get_transfer_task()


class FakePets(torch.utils.data.Dataset):
    """Stands in for torchvision.datasets.OxfordIIITPet: 3 breeds, 4 images each, different sizes."""

    classes = ["Abyssinian", "Beagle", "Bombay"]

    def __init__(self, root, split="trainval", download=False):
        assert download and os.fspath(root)
        self._labels = [i % 3 for i in range(12)]

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        return Image.new("RGB", (40 + i, 30 + 2 * i), color=(10 * i, 0, 0)), self._labels[i]


def test_pets_path_with_torchvision_mocked(monkeypatch, tmp_path, capsys):
    """The download path, end to end, without the network: random ResNet-50 weights, fake pets."""
    import torchvision
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", FakePets)
    real = transfer.resnet50_staged
    monkeypatch.setattr(transfer, "resnet50_staged", lambda n, weights=None: real(n))
    plan = transfer.TransferPlan(pretrain_images=0, pretrain_epochs=0, pool_per_class=3, test_per_class=2,
                                 image_size=32)
    monkeypatch.setattr(transfer, "PLANS", {**transfer.PLANS, "cpu": plan})
    task = get_transfer_task("pets", get_budget("cpu"))
    out = capsys.readouterr().out
    assert task.name == "pets" and "Oxford-IIIT Pet" in out and out.count("\n") == 1
    assert task.classes == FakePets.classes and task.max_per_class == 3 and len(task.test) == 6
    assert task.pool.tensors[0].shape == (9, 3, 32, 32)
    model = task.pretrained()
    assert model.head.out_features == 3 and model.features(task.test.tensors[0], upto=task.tap).shape == (6, 1024)
    assert isinstance(task.scratch().stages.layer4, nn.Sequential)
