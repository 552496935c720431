"""The node's config drive, as the agent's desired state carries it.

Ironic keeps the instance's config drive in instance_info['configdrive']:
a gzipped, base64 encoded ISO 9660 image (what Nova sends), a URL to such
content (Swift temp URL; fetched here, by the conductor, with a bounded
size), or a JSON dict that Ironic's own build_configdrive turns into an
ISO (genisoimage on the conductor, through Ironic's build_configdrive: the
conductor does not convert it before the driver sees it unless
configdrive_use_object_store is set). Decoding follows ironic-python-agent:
base64 (gzipped or not) or, from a URL only, the raw ISO.

for_node gives {"sha256", "size", "data"}: sha256 and size of the ISO
itself (decompressed, as the agent stores it), data its gzip in base64.
An agent of RPC API 1.2 gets no data: publish() puts the gzip where the
agent fetches it, as Ironic does for virtual media (under [deploy]
http_root, served at [deploy] external_http_url or http_url, or a Swift
temp URL with [deploy] configdrive_use_object_store), and the state
carries {"sha256", "size", "url"}; an older agent gets {"sha256", "data"}
(agent_client picks the form). The published name is the node's UUID and a
random token (the URL is the only credential: the HTTP root has no auth),
removed when replaced, once the agent converged on it, and at tear down.
driver_internal_info records only the sha256, never the image or the URL.
A source is fetched, built or decoded once: later pushes carry the sha256
alone (the agent keeps the image on disk).
"""
import base64
import binascii
import copy
import gzip
import hashlib
import json
import os
import secrets
import tempfile
import zlib

from oslo_log import log
import requests

from ironic.common import exception as ir_exc
from ironic.common import swift
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF

from ironic_dpu import conf as _conf  # noqa: F401  (registers [dpu])

LOG = log.getLogger(__name__)

INFO_KEY = 'dpu_config_drive'     # driver_internal_info: {sha256, source}
# Published images: <http_root>/dpu-configdrive/<node uuid>-<token>.gz, or
# Swift objects dpu-configdrive-<node uuid>-<token>.
HTTP_SUBDIR = 'dpu-configdrive'
SWIFT_PREFIX = 'dpu-configdrive-'
_TOKEN_BYTES = 32
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
    """The desired-state form of an ISO (agent_client trims it to what the
    agent's version takes)."""
    return {'sha256': hashlib.sha256(iso).hexdigest(), 'size': len(iso),
            'data': base64.b64encode(gzip.compress(iso, 6)).decode('ascii')}


def for_node(node, fresh=False):
    """The config_drive item for node's desired state, or None.

    Each source (base64 text, URL, JSON object) is decoded, fetched or
    built (genisoimage stamps the time: every build differs) once: later
    calls name the same image by its sha256 alone, so the agent keeps the
    image it has and nothing is published again. fresh=True does it again
    (the agent lost it).
    """
    value = node.instance_info.get('configdrive')
    if not value:
        if INFO_KEY in node.driver_internal_info:
            node.del_driver_internal_info(INFO_KEY)
            unpublish(node)
        return None
    cap = CONF.dpu.config_drive_max_bytes
    if isinstance(value, dict):
        source = json.dumps(value, sort_keys=True).encode()
    else:
        source = value.encode() if isinstance(value, str) else value
    source = hashlib.sha256(source).hexdigest()
    known = node.driver_internal_info.get(INFO_KEY) or {}
    if not fresh and known.get('source') == source and known.get('sha256'):
        return {'sha256': known['sha256']}
    if isinstance(value, dict):
        # Ironic's builder fills in meta_data in place: give it a copy so
        # instance_info (and the source digest) stays as the user sent it.
        iso = decode(manager_utils.build_configdrive(node,
                                                     copy.deepcopy(value)),
                     cap)
    elif _is_url(value):
        iso = fetch(value, cap)
    else:
        iso = decode(value, cap)
    item = encode(iso)
    node.set_driver_internal_info(INFO_KEY, {'sha256': item['sha256'],
                                             'source': source})
    return item


def without_data(state):
    """state as it may be stored: the config drive by sha256 only (no
    image, no URL: whoever reads the record must not fetch the drive)."""
    cd = state.get('config_drive')
    if not cd or list(cd) == ['sha256']:
        return state
    state = dict(state)
    state['config_drive'] = {'sha256': cd['sha256']}
    return state


def _swift_timeout():
    # Ironic's own rule for its configdrive temp URLs (conductor/deployments)
    return (CONF.conductor.configdrive_swift_temp_url_duration
            or CONF.conductor.deploy_callback_timeout or 1800)


def _http_dir():
    return os.path.join(CONF.deploy.http_root, HTTP_SUBDIR)


def _http_base():
    base = CONF.deploy.external_http_url or CONF.deploy.http_url
    if not base:
        raise ir_exc.InvalidParameterValue(
            'The DPU agent (RPC API 1.2) fetches the config drive by URL: '
            'set [deploy] http_url (and http_root, served by the '
            'conductor\'s HTTP server) or [deploy] '
            'configdrive_use_object_store = true, or set [dpu_agent] '
            'rpc_version_cap = 1.1 to send it inline')
    return base.rstrip('/')


def redact(url):
    """What may be logged of a published URL: no path, no query."""
    scheme, _, rest = url.partition('://')
    return '%s://%s/...' % (scheme, rest.split('/', 1)[0])


def publish(node, item):
    """Put item's image (its gzip) where the agent fetches it; its URL.

    A new random name each time; the node's other published images go.
    """
    gz = base64.b64decode(item['data'])
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    if CONF.deploy.configdrive_use_object_store:
        container = CONF.conductor.configdrive_swift_container
        name = '%s%s-%s' % (SWIFT_PREFIX, node.uuid, token)
        timeout = _swift_timeout()
        api = swift.SwiftAPI()
        with tempfile.NamedTemporaryFile() as f:
            f.write(gz)
            f.flush()
            api.create_object(container, name, f.name, object_headers={
                'X-Delete-After': str(timeout)})
        url = api.get_temp_url(container, name, timeout)
        _unpublish_swift(api, node, keep=name)
    else:
        base = _http_base()
        d = _http_dir()
        os.makedirs(d, exist_ok=True)
        # Not listable by the web server (or anyone but the conductor):
        # the random name is the only credential.
        os.chmod(d, 0o711)
        name = '%s-%s.gz' % (node.uuid, token)
        fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp-')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(gz)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(d, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        url = '%s/%s/%s' % (base, HTTP_SUBDIR, name)
        _unpublish_http(node, keep=name)
    LOG.info('Node %s: config drive %s (%d bytes, %d gzip\'d) published '
             'at %s for the DPU agent', node.uuid, item['sha256'],
             item['size'], len(gz), redact(url))
    return url


def _unpublish_http(node, keep=None):
    d = _http_dir()
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(node.uuid + '-') and name != keep:
            try:
                os.unlink(os.path.join(d, name))
            except FileNotFoundError:
                pass


def _unpublish_swift(api, node, keep=None):
    container = CONF.conductor.configdrive_swift_container
    prefix = '%s%s-' % (SWIFT_PREFIX, node.uuid)
    try:
        _, objs = api.connection.get_container(container, prefix=prefix,
                                               full_listing=True)
    except Exception as e:  # swiftclient's ClientException and friends
        LOG.warning('Node %s: cannot list published config drives in '
                    'Swift container %s: %s', node.uuid, container, e)
        return
    for obj in objs:
        if obj['name'] != keep:
            try:
                api.delete_object(container, obj['name'])
            except ir_exc.SwiftObjectNotFoundError:
                pass
            except ir_exc.SwiftOperationError as e:
                LOG.warning('Node %s: cannot delete a published config '
                            'drive from Swift: %s', node.uuid, e)


def unpublish(node):
    """Remove every config drive published for node (tear down, or the
    agent holds it now). Never fails: a leftover is only logged."""
    try:
        if CONF.deploy.configdrive_use_object_store:
            _unpublish_swift(swift.SwiftAPI(), node)
        else:
            _unpublish_http(node)
    except Exception as e:
        LOG.warning('Node %s: cannot remove its published config drive: %s',
                    node.uuid, e)
