"""Face selection: one, many, or the person in a reference photo."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import box_face

from slimswap.errors import UserError
from slimswap.face.analyser import embedding_distance
from slimswap.face.select import iou, select_faces

# --- iou and one / many -------------------------------------------------------------------


def test_iou_of_known_boxes():
    a = np.array([0, 0, 10, 10])
    assert iou(a, a) == 1.0
    assert iou(a, [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou(a, [20, 20, 30, 30]) == 0.0
    assert iou(a, [3, 3, 3, 8]) == 0.0  # empty box


def test_one_picks_the_largest_box_and_many_keeps_all():
    faces = [
        box_face(0, 0, 80, score=3.0),
        box_face(200, 0, 120, score=0.1),
        box_face(400, 0, 60),
    ]
    assert select_faces(faces, "one") == [faces[1]]
    assert select_faces(faces, "many") == faces
    assert select_faces([], "one") == [] and select_faces([], "reference", np.zeros(128)) == []


def test_bad_mode_and_missing_reference_are_user_errors():
    faces = [box_face(0, 0)]
    with pytest.raises(UserError, match="mode"):
        select_faces(faces, "largest")
    with pytest.raises(UserError, match="reference"):
        select_faces(faces, "reference")


@pytest.fixture(scope="module")
def couple(shared_data, analyser, load_rgb):
    """couple.jpg (two people, one of them deepface id01) and its faces."""
    frame = load_rgb(shared_data / "deepface_testset/_unlabeled_multi_face/couple.jpg")
    return frame, analyser.detect(frame)


@pytest.fixture(scope="module")
def id01_embedding(shared_data, analyser, load_rgb):
    frame = load_rgb(shared_data / "deepface_testset/id01/img1.jpg")
    return analyser.embed(frame, analyser.detect(frame)[0]).embedding


@pytest.mark.shared
def test_one_and_many_on_a_group_photo(shared_data, analyser, load_rgb):
    frame = load_rgb(shared_data / "insightface_wheel_samples/t1.jpg", max_side=1280)
    faces = analyser.detect(frame)
    assert len(faces) == 6
    assert len(select_faces(faces, "many")) == 6
    (one,) = select_faces(faces, "one")
    assert one.area == max(f.area for f in faces)


@pytest.mark.shared
def test_reference_picks_the_right_person(couple, id01_embedding, analyser):
    frame, faces = couple
    assert len(faces) == 2
    calls = []

    def embed(face):
        calls.append(face)
        return analyser.embed(frame, face)

    (picked,) = select_faces(faces, "reference", id01_embedding, embed=embed)
    assert len(calls) == 2  # each face embedded once, lazily
    (other,) = [analyser.embed(frame, f) for f in faces if not np.array_equal(f.bbox, picked.bbox)]
    assert embedding_distance(picked.embedding, id01_embedding) < 0.6
    assert embedding_distance(other.embedding, id01_embedding) > 0.6
    # faces that already carry embeddings need no callable
    embedded = [analyser.embed(frame, f) for f in faces]
    (again,) = select_faces(embedded, "reference", id01_embedding)
    assert np.array_equal(again.bbox, picked.bbox)


@pytest.mark.shared
def test_reference_of_someone_absent_selects_nobody(couple, shared_data, analyser, load_rgb):
    frame, faces = couple
    other = load_rgb(shared_data / "deepface_testset/id12/img35.jpg")
    reference = analyser.embed(other, analyser.detect(other)[0]).embedding
    embedded = [analyser.embed(frame, f) for f in faces]
    assert select_faces(embedded, "reference", reference) == []
    # loosening the threshold past every distance selects the closest face again
    assert len(select_faces(embedded, "reference", reference, max_distance=2.0)) == 1


@pytest.mark.shared
def test_reference_in_a_crowded_selfie_is_not_the_largest_face(
    shared_data, analyser, load_rgb, id01_embedding
):
    frame = load_rgb(shared_data / "deepface_testset/_unlabeled_multi_face/selfie-many-people.jpg")
    faces = analyser.detect(frame)
    assert len(faces) >= 4
    (picked,) = select_faces(
        faces, "reference", id01_embedding, embed=lambda f: analyser.embed(frame, f)
    )
    (largest,) = select_faces(faces, "one")
    assert not np.array_equal(picked.bbox, largest.bbox)
    # the picked face is the only one within the threshold
    others = [analyser.embed(frame, f) for f in faces if not np.array_equal(f.bbox, picked.bbox)]
    assert all(embedding_distance(f.embedding, id01_embedding) > 0.6 for f in others)


def test_reference_without_embeddings_or_embed_callable_is_a_bug():
    with pytest.raises(ValueError, match="embed"):
        select_faces([box_face(0, 0)], "reference", np.zeros(128, np.float32))
