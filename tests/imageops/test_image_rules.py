"""Docker's rules for resolving, tagging, removing, pruning, inspecting and listing images."""

from __future__ import annotations

import pytest

from dockyard.client import Client
from dockyard.errors import Conflict, InvalidArgument, InvalidReference, NotFound
from tests.content.storekit import client, make_image, make_tar, root

__all__ = ["client", "root"]

DIGEST = "sha256:" + "d" * 64


def test_resolve_rules(client: Client) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["busybox", "example.com/team/app:1.0"],
                   repo_digests=[f"busybox@{DIGEST}"])
    assert client.resolve("busybox") == a.id
    assert client.resolve("busybox:latest") == a.id
    assert client.resolve("docker.io/library/busybox:latest") == a.id
    assert client.resolve("example.com/team/app:1.0") == a.id
    assert client.resolve(f"busybox@{DIGEST}") == a.id
    assert client.resolve(a.id) == a.id
    assert client.resolve(a.id.hex) == a.id
    assert client.resolve(a.id.hex[:12]) == a.id
    assert client.resolve("sha256:" + a.id.hex[:8]) == a.id
    for missing in ("nosuch", "busybox:1", "example.com/team/app", "sha256:" + "0" * 64, "0" * 64):
        with pytest.raises(NotFound, match=f"^No such image: {missing}$"):
            client.resolve(missing)
    with pytest.raises(InvalidReference):
        client.resolve("Upper/Case")


def test_short_id_that_is_also_a_name_prefers_the_name(client: Client) -> None:
    a = make_image(client, [], extra="a")
    b = make_image(client, [], extra="b", names=[a.id.hex[:6]])
    assert client.resolve(a.id.hex[:6]) == b.id


def test_ambiguous_prefix_is_not_found(client: Client) -> None:
    ids = [make_image(client, [], extra=str(i)).id for i in range(40)]
    firsts = [i.hex[0] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(NotFound):
        client.resolve(dup)


def test_tag(client: Client) -> None:
    a = make_image(client, [], names=["one"])
    assert client.tag("one", "two") == "docker.io/library/two:latest"
    assert client.tag(a.id.hex[:10], "localhost:5000/three:v") == "localhost:5000/three:v"
    assert client.resolve("two") == a.id
    with pytest.raises(InvalidArgument, match="refusing to create a tag with a digest reference"):
        client.tag("one", f"x@{DIGEST}")
    with pytest.raises(NotFound, match=r"^No such image: nope:latest$"):
        client.tag("nope", "x")
    with pytest.raises(NotFound, match=r"^No such image: nope:1$"):
        client.tag("nope:1", "x")
    b = make_image(client, [], extra="b")
    client.tag(b.id, "two")  # a tag moves to the new image
    assert client.resolve("two") == b.id and client.resolve("one") == a.id


def test_rmi_untags_until_the_last_reference_then_deletes(client: Client) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["one", "two"])
    items = client.remove("one")
    assert [i.to_dict() for i in items] == [{"Untagged": "one:latest"}]
    items = client.remove("two")
    assert items[0].to_dict() == {"Untagged": "two:latest"}
    assert items[1].to_dict() == {"Deleted": str(a.id)}
    assert items[2].to_dict() == {"Deleted": str(a.diff_ids[0])}
    assert client.images(all=True) == []
    assert not client.store.content.exists(a.diff_ids[0])


def test_rmi_by_id_with_several_repositories_needs_force(client: Client) -> None:
    a = make_image(client, [], names=["one", "two"])
    with pytest.raises(Conflict, match=f"^conflict: unable to delete {a.id.hex[:12]} \\(must be forced\\) - "
                                       "image is referenced in multiple repositories$"):
        client.remove(a.id.hex[:12])
    items = client.remove(a.id.hex[:12], force=True)
    assert {i.untagged for i in items if i.untagged} == {"one:latest", "two:latest"}
    assert items[-1].deleted == str(a.id)


def test_rmi_by_id_with_one_repository_untags_and_deletes(client: Client) -> None:
    a = make_image(client, [], names=["one:1"], repo_digests=[f"one@{DIGEST}"])
    items = client.remove(str(a.id))
    assert [i.to_dict() for i in items] == [{"Untagged": "one:1"}, {"Untagged": f"one@{DIGEST}"},
                                            {"Deleted": str(a.id)}]


def test_last_tag_of_a_repository_takes_its_digests(client: Client) -> None:
    a = make_image(client, [], names=["one", "other"], repo_digests=[f"one@{DIGEST}"])
    items = client.remove("one")
    assert [i.untagged for i in items] == ["one:latest", f"one@{DIGEST}"]
    assert client.inspect(a.id)["RepoDigests"] == []


def test_parents_with_children_cannot_be_deleted_and_untagged_parents_are_pruned(client: Client) -> None:
    base = make_image(client, [make_tar({"a": b"a"})], names=["base"])
    child = make_image(client, [make_tar({"a": b"a"}), make_tar({"b": b"b"})], names=["child"],
                       parent=str(base.id))
    with pytest.raises(Conflict, match="cannot be forced\\) - image has dependent child images"):
        client.remove(base.id.hex, force=True)
    assert [i.untagged for i in client.remove("base")] == ["base:latest"]  # untag only: it has a child
    assert client.resolve(base.id.hex) == base.id
    assert [s.id for s in client.images()] == [child.id]  # untagged parents are hidden without -a
    assert {s.id for s in client.images(all=True)} == {child.id, base.id}
    items = client.remove("child")
    assert [i.deleted for i in items if i.deleted.startswith("sha256:")][:1] == [str(child.id)]
    assert str(base.id) in {i.deleted for i in items}  # the untagged parent went too
    assert client.images(all=True) == []


def test_no_prune_keeps_untagged_parents(client: Client) -> None:
    base = make_image(client, [], extra="base")
    make_image(client, [], names=["child"], parent=str(base.id))
    client.remove("child", no_prune=True)
    assert [s.id for s in client.images(all=True)] == [base.id]


def test_prune_dangling_all_and_filters(client: Client) -> None:
    layer = make_tar({"d": b"d" * 30000})
    dangling = make_image(client, [layer], extra="d")
    old = make_image(client, [], names=["old"], created="2001-01-01T00:00:00Z", labels={"env": "x"})
    new = make_image(client, [], names=["new"], created="2099-01-01T00:00:00Z")
    report = client.prune()
    assert [i.deleted for i in report.deleted if i.deleted][:1] == [str(dangling.id)]
    assert report.space_reclaimed == 30000  # file bytes, as docker counts (not the tar's length)
    assert {s.id for s in client.images()} == {old.id, new.id}
    assert client.prune(all=True, filters={"label": ["env=y"]}).deleted == []
    assert client.prune(all=True, filters={"until": ["2020-01-01"]}).deleted[-1].deleted == str(old.id)
    assert [s.id for s in client.images()] == [new.id]
    with pytest.raises(InvalidArgument, match="invalid filter 'nope'"):
        client.prune(filters={"nope": ["1"]})


def test_images_listing_order_and_hidden_intermediates(client: Client) -> None:
    a = make_image(client, [], names=["a"], created="2020-01-01T00:00:00Z")
    b = make_image(client, [], names=["b"], created="2021-01-01T00:00:00.123456789Z")
    listed = client.images()
    assert [s.id for s in listed] == [b.id, a.id]
    assert listed[0].repo_tags == ["b:latest"] and listed[0].created == pytest.approx(1609459200.123456)


def test_inspect_shape(client: Client) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["img"], repo_digests=[f"img@{DIGEST}"],
                   labels={"k": "v"})
    doc = client.inspect("img")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                "GraphDriver", "RootFS", "Metadata"):
        assert key in doc, key
    assert doc["Id"] == str(a.id) and doc["RepoTags"] == ["img:latest"]
    assert doc["RepoDigests"] == [f"img@{DIGEST}"]
    assert doc["Config"]["Labels"] == {"k": "v"} and doc["Created"] == "2024-01-02T03:04:05Z"
    # docker's container.Config: every field in order, "omitempty" ones only when set.
    assert list(doc["Config"]) == [
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
        "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels"]
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["Entrypoint"] is None
    assert doc["ContainerConfig"]["Cmd"] is None
    assert doc["RootFS"] == {"Type": "layers", "Layers": [str(a.diff_ids[0])]}
    assert doc["GraphDriver"] == {"Data": None, "Name": "overlay2"}
    assert doc["Metadata"]["LastTagTime"].endswith("Z")


def test_history_rows_newest_first_with_local_ids(client: Client) -> None:
    base = make_image(client, [make_tar({"a": b"a"})], names=["base"], history=["ADD a"])
    top = make_tar({"b": b"b" * 20000})
    child = make_image(client, [make_tar({"a": b"a"}), top], names=["child"],
                       parent=str(base.id), history=["ADD a", "RUN b"])
    rows = client.history("child")
    assert [r.created_by for r in rows] == ["RUN b", "ADD a"]
    assert [r.id for r in rows] == [str(child.id), str(base.id)]
    assert rows[0].tags == ("child:latest",) and rows[0].size == 20000
    assert client.history("base")[0].id == str(base.id)
