"""Who may do what in the namespace: the one place every bucket and object route asks.

The rules (issue 13, item 5):

- a bucket's owner tenant may do everything with it;
- a tenant granted ``read`` may list the bucket and read its objects; ``read-write`` may
  also write (upload, copy into, delete, restore, tag) but never administer it (delete the
  bucket, change its versioning, access or grants, share objects);
- a ``public-read`` bucket may be listed and read by anyone, without a token: every object
  in it, whatever the object's own access;
- an object ``public-read`` may be read by anyone, one ``shared`` by the tenants listed in
  its ``shared_with``.

An object's access only adds readers to those its bucket has (as S3's ACLs only grant):
``private`` means "no one beyond the bucket's readers", never "hidden from them", so a
private object in a ``public-read`` bucket is public. This is by design (one switch makes a
bucket's contents public, as a grant of ``read`` makes them readable by a tenant), and it is
wider than S3's bucket ``READ`` for ``AllUsers``, which lists the keys but reads no object
(docs/S3.md, ACLs): a bucket is made public-read only if everything in it may be.

A refusal to read looks exactly like a missing bucket or key (BucketNotFound or
KeyNotFound, 404): the native API never tells a caller that something it may not see
exists. A caller who may read a bucket but not write it gets 403 on writes (it already
knows the bucket exists). ``None`` as the principal is an anonymous caller (no token).
"""

from __future__ import annotations

from dfs.api.bodies import Principal
from dfs.errors import BucketNotFound, Forbidden, KeyNotFound
from dfs.meta.namespace import (
    ACCESS_PRIVATE,
    ACCESS_PUBLIC_READ,
    ACCESS_SHARED,
    GRANT_READ_WRITE,
    BucketRecord,
    ObjectVersion,
)


def no_bucket(name: str) -> BucketNotFound:
    """What a missing bucket and one the caller may not see both answer (one message)."""
    return BucketNotFound(f"no bucket {name!r}")


def no_key(bucket: str, key: str) -> KeyNotFound:
    """What every unreadable object answers: missing, refused, in a missing bucket or one
    the caller may not see (one message: nothing tells them apart)."""
    return KeyNotFound(f"no key {key!r} in bucket {bucket!r}")


def grant_of(bucket: BucketRecord, tenant: str) -> str | None:
    """The grant ``tenant`` holds on ``bucket`` (None: none)."""
    return dict(bucket.grants).get(tenant)


def is_owner(who: Principal | None, bucket: BucketRecord) -> bool:
    return who is not None and who.tenant == bucket.tenant


def can_list(who: Principal | None, bucket: BucketRecord) -> bool:
    """List the bucket's keys (and read every object in it)."""
    if bucket.access == ACCESS_PUBLIC_READ or is_owner(who, bucket):
        return True
    return who is not None and grant_of(bucket, who.tenant) is not None


def can_read(who: Principal | None, bucket: BucketRecord, obj: ObjectVersion) -> bool:
    if can_list(who, bucket) or obj.access == ACCESS_PUBLIC_READ:
        return True
    return who is not None and obj.access == ACCESS_SHARED and who.tenant in obj.shared_with


def can_write(who: Principal | None, bucket: BucketRecord) -> bool:
    if is_owner(who, bucket):
        return True
    return who is not None and grant_of(bucket, who.tenant) == GRANT_READ_WRITE


def require_list(who: Principal | None, bucket: BucketRecord) -> None:
    if not can_list(who, bucket):
        raise no_bucket(bucket.name)


def require_read(who: Principal | None, bucket: BucketRecord, obj: ObjectVersion) -> None:
    if not can_read(who, bucket, obj):
        raise no_key(bucket.name, obj.key)


def require_write(who: Principal | None, bucket: BucketRecord) -> None:
    if can_write(who, bucket):
        return
    if can_list(who, bucket) and who is not None:
        raise Forbidden(f"tenant {who.tenant!r} may only read bucket {bucket.name!r}")
    raise no_bucket(bucket.name)


def require_owner(who: Principal | None, bucket: BucketRecord) -> None:
    if is_owner(who, bucket):
        return
    if can_list(who, bucket) and who is not None:
        raise Forbidden(f"only the owner of bucket {bucket.name!r} may do this")
    raise no_bucket(bucket.name)


def require_may_share(who: Principal | None, bucket: BucketRecord, requested: str | None) -> None:
    """A write that would give a new object an access other than private (``public-read``
    or ``shared``): only the bucket's owner shares objects. A read-write grantee may write
    objects, never make them readable by others: its PutObject with ``x-amz-acl:
    public-read``, or a link with that access, is refused as its PATCH of the access is."""
    if requested is not None and requested != ACCESS_PRIVATE:
        require_owner(who, bucket)
