"""Images found by their properties and tags (Instance_Image = select: ...), against LocalCloud's
Glance v2 (tag/status filters, image properties), resolved again as the site rotates images."""

from __future__ import annotations

from ce_testkit import live_servers

SELECT = "select: os_distro=almalinux, os_version=9, tag=belle2"


def add(cloud, name, seconds_later=60, tags=("belle2",), **properties):
    cloud.clock.advance(seconds_later)  # Glance's created_at decides which is newest
    props = {"os_distro": "almalinux", "os_version": "9", **properties}
    return cloud.image.add_image(name, properties=props, tags=list(tags))


def images_of_vms(cloud):
    return {s.name: s.image_id for s in live_servers(cloud)}


def test_newest_matching_image_is_used_and_followed_as_images_rotate(make_ce, wrapper, local_cloud):
    first = add(local_cloud, "alma9-belle2-2026-10")
    ce = make_ce(Instance_Image=SELECT, ReferenceCacheSeconds=0)
    assert ce.submitJob(wrapper, "", 1)["OK"]
    (on_first,) = images_of_vms(local_cloud)
    assert images_of_vms(local_cloud)[on_first] == first.id

    # the site publishes a newer one, plus newer images that do not match every criterion
    second = add(local_cloud, "alma9-belle2-2026-11")
    add(local_cloud, "alma9-t2k-2026-11", tags=("t2k",))
    add(local_cloud, "alma8-belle2", os_version="8")
    add(local_cloud, "alma9-belle2-retired", tags=("belle2",)).status = "deactivated"
    assert ce.submitJob(wrapper, "", 1)["OK"]
    vms = images_of_vms(local_cloud)
    assert vms[on_first] == first.id  # left to end naturally on the image no longer selected
    (on_second,) = set(vms) - {on_first}
    assert vms[on_second] == second.id

    local_cloud.image.remove_image(second.id)  # rotated out: the selection falls back
    assert ce.submitJob(wrapper, "", 1)["OK"]
    vms = images_of_vms(local_cloud)
    (on_third,) = set(vms) - {on_first, on_second}
    assert vms[on_third] == first.id and vms[on_second] == second.id


def test_nothing_matching_fails_naming_the_option_and_creates_nothing(make_ce, wrapper, local_cloud):
    add(local_cloud, "alma9-t2k", tags=("t2k",))
    ce = make_ce(Instance_Image=SELECT)
    result = ce.submitJob(wrapper, "", 1)
    assert not result["OK"] and "Instance_Image" in result["Message"]
    assert live_servers(local_cloud) == []


def test_a_malformed_selection_is_refused_naming_the_option(local_cloud, tmp_path):
    from ce_testkit import ce_parameters, write_cloud_auth
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    auth = write_cloud_auth(tmp_path / "cloud.auth", "u", "p")
    result = ComputingElementFactory().getCE(
        ceType="Cloud", ceName="bad.local.test",
        ceParametersDict=ce_parameters(local_cloud, auth, Instance_Image="select: os_distro, tag=belle2"),
    )
    assert not result["OK"] and "Instance_Image" in result["Message"] and "'os_distro'" in result["Message"]
