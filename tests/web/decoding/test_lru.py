"""The byte-bounded LRU behind the embedding and prediction caches."""

from __future__ import annotations

from maskweb.masking.decoding.lru import ByteLRU


def sized(budget: int) -> ByteLRU[bytes]:
    return ByteLRU(lambda: budget, len)


def test_least_recently_used_go_first_when_over_the_budget():
    cache = sized(10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # now "b" is the least recently used
    cache.put("c", b"1234")
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    assert cache.nbytes == 8 and len(cache) == 2


def test_the_newest_item_is_kept_even_alone_over_the_budget():
    cache = sized(4)
    cache.put("a", b"12")
    cache.put("big", b"123456789")
    assert cache.get("big") == b"123456789" and cache.get("a") is None
    assert len(cache) == 1


def test_replacing_a_key_counts_its_new_size_once():
    cache = sized(100)
    cache.put("a", b"x" * 60)
    cache.put("a", b"x" * 30)
    assert cache.nbytes == 30 and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_changed_budget_applies_at_the_next_insertion():
    budget = [100]
    cache: ByteLRU[bytes] = ByteLRU(lambda: budget[0], len)
    for key in "abcd":
        cache.put(key, b"x" * 20)
    budget[0] = 45
    cache.put("e", b"x" * 20)
    assert [k for k in "abcde" if cache.get(k) is not None] == ["d", "e"]
