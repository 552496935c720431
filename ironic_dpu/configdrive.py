"""The node's config drive, as the agent's desired state carries it.

Ironic keeps the instance's config drive in instance_info['configdrive']:
a gzipped, base64 encoded ISO 9660 image (what Nova sends), a URL to such
content (Swift temp URL; fetched here, by the conductor, with a bounded
size), or a JSON dict that Ironic's own build_configdrive turns into an
ISO (genisoimage on the conductor, through Ironic's build_configdrive: the
conductor does not convert it before the driver sees it unless
configdrive_use_object_store is set). Decoding follows ironic-python-agent:
base64 (gzipped or not) or, from a URL only, the raw ISO.

The agent gets {"sha256": <hex of the ISO>, "data": <base64 gzip ISO>};
driver_internal_info records only the sha256, never the image. A URL or a
JSON object is fetched or built once per source: later pushes carry the
sha256 alone (the agent keeps the image on disk).
"""
import base64
import binascii
import copy
import gzip
import hashlib
import json
import zlib

import requests

from ironic.common import exception as ir_exc
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF

from ironic_dpu import conf as _conf  # noqa: F401  (registers [dpu])

INFO_KEY = 'dpu_config_drive'     # driver_internal_info: {sha256, source}
_GZIP_MAGIC = b'\x1f\x8b'
_ISO_MAGIC_AT = 32769            # ISO 9660 primary volume descriptor id


def _too_big(what, cap):
    return ir_exc.InvalidParameterValue(
        'The config drive %s is larger than the cap of %d bytes ([dpu] '
        'config_drive_max_bytes)' % (what, cap))


def _gunzip(raw, cap):
    """Decompress at most cap bytes: a small gzip can hide a huge ISO."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, cap + 1)
    except zlib.error as e:
        raise ir_exc.InvalidParameterValue(
            'The config drive is not a valid gzip stream: %s' % e)
    if len(out) > cap:
        raise _too_big('image (decompressed)', cap)
    if not d.eof:
        raise ir_exc.InvalidParameterValue(
            'The config drive gzip stream is truncated')
    return out


def _is_iso(raw):
    return raw[_ISO_MAGIC_AT:_ISO_MAGIC_AT + 5] == b'CD001'


def _encoded_cap(cap):
    """Largest base64 text of an image of at most cap bytes (+ framing)."""
    return (cap + 2) // 3 * 4 + 4096


def decode(content, cap, raw_allowed=False):
    """ISO bytes of a base64 (gzipped or plain) config drive.

    raw_allowed: content fetched from a URL may also be the ISO itself.
    """
    if isinstance(content, str):
        content = content.encode('ascii', 'replace')
    if raw_allowed and _is_iso(content):
        if len(content) > cap:
            raise _too_big('image', cap)
        return content
    # base64 of gzip: the encoded size bounds the compressed size
    if len(content) > _encoded_cap(cap):
        raise _too_big('(encoded)', cap)
    try:
        raw = base64.b64decode(b''.join(content.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ir_exc.InvalidParameterValue(
            'The config drive is neither a URL, an ISO image nor base64: %s'
            % e)
    if raw.startswith(_GZIP_MAGIC):
        return _gunzip(raw, cap)
    if len(raw) > cap:
        raise _too_big('image', cap)
    return raw


def fetch(url, cap):
    """GET url, reading at most cap+1 bytes of the (encoded) content."""
    limit = _encoded_cap(cap)
    timeout = CONF.dpu.config_drive_fetch_timeout
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp:
            resp.raise_for_status()
            body = bytearray()
            for chunk in resp.iter_content(chunk_size=1 << 20):
                body += chunk
                if len(body) > limit:
                    raise _too_big('at %s' % _safe_url(url), cap)
    except requests.RequestException as e:
        raise ir_exc.InvalidParameterValue(
            'Cannot fetch the config drive from %s: %s'
            % (_safe_url(url), e.__class__.__name__))
    return decode(bytes(body), cap, raw_allowed=True)


def _safe_url(url):
    # Swift temp URLs carry their signature in the query: never log it.
    return url.split('?', 1)[0]


def _is_url(value):
    return isinstance(value, str) and '://' in value[:16]


def encode(iso):
    """The desired-state form of an ISO."""
    return {'sha256': hashlib.sha256(iso).hexdigest(),
            'data': base64.b64encode(gzip.compress(iso, 6)).decode('ascii')}


def for_node(node, fresh=False):
    """The config_drive item for node's desired state, or None.

    A URL is fetched, and a JSON object built into an ISO (genisoimage
    stamps the time: every build differs), once per source: later calls
    name the same image by its sha256 alone, so the agent keeps the image
    it has. fresh=True builds or fetches again (the agent lost it).
    """
    value = node.instance_info.get('configdrive')
    if not value:
        if INFO_KEY in node.driver_internal_info:
            node.del_driver_internal_info(INFO_KEY)
        return None
    cap = CONF.dpu.config_drive_max_bytes
    if not isinstance(value, dict) and not _is_url(value):
        return encode(decode(value, cap))
    source = hashlib.sha256(json.dumps(value, sort_keys=True).encode()
                            ).hexdigest()
    known = node.driver_internal_info.get(INFO_KEY) or {}
    if not fresh and known.get('source') == source and known.get('sha256'):
        return {'sha256': known['sha256']}
    if isinstance(value, dict):
        # Ironic's builder fills in meta_data in place: give it a copy so
        # instance_info (and the source digest) stays as the user sent it.
        iso = decode(manager_utils.build_configdrive(node,
                                                     copy.deepcopy(value)),
                     cap)
    else:
        iso = fetch(value, cap)
    item = encode(iso)
    node.set_driver_internal_info(INFO_KEY, {'sha256': item['sha256'],
                                             'source': source})
    return item


def without_data(state):
    """state as it may be stored: the config drive by sha256 only."""
    cd = state.get('config_drive')
    if not cd or 'data' not in cd:
        return state
    state = dict(state)
    state['config_drive'] = {'sha256': cd['sha256']}
    return state
