"""The config drive published for the agent to fetch (agent API 1.2), and
the inline form for an older agent."""
import base64
import gzip
import hashlib
import os
import stat
import tempfile
from unittest import mock

import oslo_messaging as messaging

from ironic.common import exception as ir_exc
from ironic.conf import CONF

from ironic_dpu import agent_client
from ironic_dpu import configdrive
from ironic_dpu import deploy
from ironic_dpu import desired
from ironic_dpu.tests import base
from ironic_dpu.tests.test_agent_client import remote

ISO = b'\0' * 32769 + b'CD001' + bytes(range(256)) * 40
SHA = hashlib.sha256(ISO).hexdigest()
OTHER_NODE = '0c6a1f6e-3b0f-4c53-9f0e-2d3c4b5a6978'
HTTP_URL = 'http://192.0.2.10:8080'


def b64gz(data):
    return base64.b64encode(gzip.compress(data)).decode()


class HTTPRootCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__('shutil').rmtree(self.root))
        CONF.set_override('http_root', self.root, group='deploy')
        CONF.set_override('http_url', HTTP_URL + '/', group='deploy')
        self.dir = os.path.join(self.root, configdrive.HTTP_SUBDIR)

    def files(self):
        try:
            return sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []

    def served(self, url):
        """The bytes the conductor's web server would serve for url."""
        self.assertTrue(url.startswith(HTTP_URL + '/'), url)
        path = os.path.join(self.root, url[len(HTTP_URL) + 1:])
        with open(path, 'rb') as f:
            return f.read()


class PublishHTTPTests(HTTPRootCase):

    def test_published_under_http_root_with_an_unguessable_name(self):
        node = self.node()
        item = configdrive.encode(ISO)
        with self.assertLogs('ironic_dpu.configdrive', 'INFO') as logs:
            url = configdrive.publish(node, item)
        prefix = '%s/%s/%s-' % (HTTP_URL, configdrive.HTTP_SUBDIR,
                                node.uuid)
        self.assertTrue(url.startswith(prefix), url)
        token = url[len(prefix):-len('.gz')]
        self.assertGreaterEqual(len(token), 43)   # 32 random bytes
        # what the agent fetches: the gzip of the ISO whose sha256/size the
        # state names
        self.assertEqual(ISO, gzip.decompress(self.served(url)))
        self.assertEqual((SHA, len(ISO)), (item['sha256'], item['size']))
        # readable by the web server, the directory not listable
        name = os.path.join(self.dir, self.files()[0])
        self.assertEqual(0o644, stat.S_IMODE(os.stat(name).st_mode))
        self.assertEqual(0o711, stat.S_IMODE(os.stat(self.dir).st_mode))
        self.assertNotIn(token, '\n'.join(logs.output))
        self.assertIn('http://192.0.2.10:8080/...', logs.output[-1])

    def test_replaced_and_removed_per_node(self):
        node, other = self.node(), self.node(uuid=OTHER_NODE)
        theirs = configdrive.publish(other, configdrive.encode(ISO))
        first = configdrive.publish(node, configdrive.encode(ISO))
        second = configdrive.publish(node, configdrive.encode(ISO + b'x'))
        self.assertNotEqual(first, second)
        names = self.files()
        self.assertEqual(2, len(names))
        self.assertIn(second.rsplit('/', 1)[1], names)   # first replaced
        self.assertIn(theirs.rsplit('/', 1)[1], names)
        configdrive.unpublish(node)
        self.assertEqual([theirs.rsplit('/', 1)[1]], self.files())
        configdrive.unpublish(node)                       # idempotent

    def test_no_http_url_says_what_to_set(self):
        CONF.clear_override('http_url', group='deploy')
        e = self.raises(ir_exc.InvalidParameterValue, configdrive.publish,
                        self.node(), configdrive.encode(ISO))
        for opt in ('http_url', 'configdrive_use_object_store',
                    'rpc_version_cap'):
            self.assertIn(opt, str(e))
        self.assertEqual([], self.files())

    def test_external_http_url_wins_like_virtual_media(self):
        CONF.set_override('external_http_url', 'https://cdn.example:443',
                          group='deploy')
        url = configdrive.publish(self.node(), configdrive.encode(ISO))
        self.assertTrue(url.startswith('https://cdn.example:443/'
                                       'dpu-configdrive/'), url)


class PublishSwiftTests(base.TestCase):

    def setUp(self):
        super().setUp()
        CONF.set_override('configdrive_use_object_store', True,
                          group='deploy')
        CONF.set_override('configdrive_swift_temp_url_duration', 900,
                          group='conductor')
        p = mock.patch.object(configdrive.swift, 'SwiftAPI', autospec=True)
        self.api = p.start().return_value
        self.addCleanup(p.stop)
        self.api.get_temp_url.return_value = (
            'https://swift.example/v1/AUTH_x/ironic_configdrive_container/'
            'obj?temp_url_sig=SIG&temp_url_expires=1')
        self.uploaded = []

        def create(container, name, filename, object_headers=None):
            with open(filename, 'rb') as f:
                self.uploaded.append((container, name, f.read(),
                                      object_headers))
        self.api.create_object.side_effect = create

    def test_temp_url_of_an_expiring_object(self):
        node = self.node()
        self.api.connection.get_container.return_value = ({}, [
            {'name': 'dpu-configdrive-%s-old' % node.uuid}])
        url = configdrive.publish(node, configdrive.encode(ISO))
        self.assertEqual(self.api.get_temp_url.return_value, url)
        [(container, name, body, headers)] = self.uploaded
        self.assertEqual('ironic_configdrive_container', container)
        self.assertTrue(name.startswith('dpu-configdrive-%s-' % node.uuid))
        self.assertGreaterEqual(len(name), len('dpu-configdrive-') + 36 + 44)
        self.assertEqual(ISO, gzip.decompress(body))
        self.assertEqual({'X-Delete-After': '900'}, headers)
        self.api.get_temp_url.assert_called_once_with(container, name, 900)
        # the node's older object goes, only it
        self.api.connection.get_container.assert_called_with(
            container, prefix='dpu-configdrive-%s-' % node.uuid,
            full_listing=True)
        self.api.delete_object.assert_called_once_with(
            container, 'dpu-configdrive-%s-old' % node.uuid)

    def test_unpublish_deletes_the_nodes_objects(self):
        node = self.node()
        names = ['dpu-configdrive-%s-a' % node.uuid,
                 'dpu-configdrive-%s-b' % node.uuid]
        self.api.connection.get_container.return_value = (
            {}, [{'name': n} for n in names])
        self.api.delete_object.side_effect = [
            ir_exc.SwiftObjectNotFoundError(obj='a', container='c',
                                            operation='delete'), None]
        configdrive.unpublish(node)
        self.assertEqual(names, [c.args[1] for c in
                                 self.api.delete_object.call_args_list])


class VersionFallbackTests(HTTPRootCase):
    """desired.push through the real AgentClient (oslo's client mocked):
    the URL form at 1.2; the inline form for an older agent."""

    def setUp(self):
        super().setUp()
        p = mock.patch.object(messaging, 'get_rpc_client', autospec=True)
        self.get_client = p.start()
        self.addCleanup(p.stop)
        self.prepare = self.get_client.return_value.prepare
        self.call = self.prepare.return_value.call
        self.call.return_value = {'observed': {}, 'generation': 1}
        self.task = base.FakeTask(
            self.node(instance_info={'configdrive': b64gz(ISO)}), [],
            [self.target('boot', boot_index=0)])

    def push(self, wait=None):
        client = agent_client.AgentClient(base.NODE_UUID, mock.sentinel.t)
        return desired.push(self.task, desired.build(self.task),
                            client=client, wait=wait)

    def sent(self):
        return [(c.kwargs['version'], cl.kwargs['state']['config_drive'],
                 cl.kwargs.get('wait')) for c, cl in
                zip(self.prepare.call_args_list, self.call.call_args_list)]

    def test_agent_1_2_gets_the_url_only(self):
        self.push(wait=2.0)
        [(version, drive, wait)] = self.sent()
        self.assertEqual(('1.2', 2.0), (version, wait))
        self.assertEqual(['sha256', 'size', 'url'], sorted(drive))
        self.assertEqual((SHA, len(ISO)), (drive['sha256'], drive['size']))
        self.assertEqual(ISO, gzip.decompress(self.served(drive['url'])))
        rec = self.task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual({'sha256': SHA}, rec['config_drive'])
        self.assertNotIn(drive['url'].rsplit('/', 1)[1],
                         str(self.task.node.driver_internal_info))
        # the message stays small: nothing of the image travels
        self.assertLess(len(str(self.call.call_args.kwargs)), 2048)

    def test_older_agent_gets_it_inline_after_unsupported_version(self):
        self.call.side_effect = [
            remote('UnsupportedVersion', 'oslo_messaging.rpc.dispatcher',
                   'Endpoint does not support RPC version 1.2. Attempted '
                   'method: apply_state'),
            {'observed': {}, 'generation': 1}]
        with self.assertLogs('ironic_dpu.agent_client', 'WARNING') as logs:
            self.push(wait=2.0)
        (v1, d1, _), (v2, d2, w2) = self.sent()
        self.assertEqual('1.2', v1)
        self.assertIn('url', d1)
        self.assertEqual(('1.1', 2.0), (v2, w2))
        self.assertEqual(['data', 'sha256'], sorted(d2))
        self.assertEqual(ISO, gzip.decompress(base64.b64decode(d2['data'])))
        self.assertIn('older than RPC API 1.2', logs.output[-1])

    def test_cap_below_1_2_sends_inline_and_publishes_nothing(self):
        for cap, version in (('1.1', '1.1'), ('1.0', '1.0')):
            CONF.set_override('rpc_version_cap', cap, group='dpu_agent')
            self.call.reset_mock()
            self.prepare.reset_mock()
            self.task.node.driver_internal_info = {}
            self.push(wait=2.0)
            [(v, drive, _)] = self.sent()
            self.assertEqual(version, v)
            # no size either: a 1.0 agent refuses fields it does not know
            self.assertEqual(['data', 'sha256'], sorted(drive))
            self.assertEqual([], self.files())

    def test_lost_image_is_published_again(self):
        self.push()
        first = self.sent()[0][1]['url']
        lost = remote('InvalidParameterValue', 'ironic.common.exception',
                      'storage: config_drive %s: the agent holds no such '
                      'image; send config_drive.url (or data)' % SHA)
        self.call.side_effect = [lost, {'observed': {}}]
        self.push()
        sent = self.sent()
        self.assertEqual(['sha256'], sorted(sent[1][1]))   # by sha256 alone
        self.assertEqual(['sha256', 'size', 'url'], sorted(sent[2][1]))
        self.assertNotEqual(first, sent[2][1]['url'])
        self.assertEqual([sent[2][1]['url'].rsplit('/', 1)[1]], self.files())

    def test_converged_deploy_and_clean_up_unpublish(self):
        self.push()
        self.assertEqual(1, len(self.files()))
        d = deploy.DPUDeploy()
        d._converged(self.task, 1, 0.0, 'test')
        self.assertEqual([], self.files())
        configdrive.publish(self.task.node, configdrive.encode(ISO))
        d.clean_up(self.task)
        self.assertEqual([], self.files())
