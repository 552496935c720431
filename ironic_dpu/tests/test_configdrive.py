import base64
import gzip
import hashlib
from unittest import mock

from ironic.common import exception as ir_exc
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF

from ironic_dpu import configdrive
from ironic_dpu import desired
from ironic_dpu import exception
from ironic_dpu.tests import base

# an ISO 9660 image as far as the signature goes
ISO = b'\0' * 32769 + b'CD001' + b'\1' * 2000


def b64gz(data):
    return base64.b64encode(gzip.compress(data)).decode()


def unpack(item):
    return gzip.decompress(base64.b64decode(item['data']))


class FakeResponse(object):
    def __init__(self, body, chunk=4096):
        self.body, self.chunk, self.read = body, chunk, 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def raise_for_status(self):
        pass

    def iter_content(self, chunk_size):
        for i in range(0, len(self.body), self.chunk):
            self.read += self.chunk
            yield self.body[i:i + self.chunk]


class DecodeTests(base.TestCase):

    def test_gzip_and_plain_base64(self):
        self.assertEqual(ISO, configdrive.decode(b64gz(ISO), 1 << 20))
        self.assertEqual(ISO, configdrive.decode(
            base64.b64encode(ISO).decode(), 1 << 20))
        # line-wrapped base64 (base64(1) output) is base64 too
        wrapped = base64.encodebytes(gzip.compress(ISO)).decode()
        self.assertEqual(ISO, configdrive.decode(wrapped, 1 << 20))

    def test_oversized_names_the_cap(self):
        e = self.raises(ir_exc.InvalidParameterValue, configdrive.decode,
                        b64gz(ISO), 1000)
        self.assertIn('cap of 1000 bytes', str(e))
        self.assertIn('config_drive_max_bytes', str(e))
        self.assertRaises(ir_exc.InvalidParameterValue, configdrive.decode,
                          base64.b64encode(ISO).decode(), 1000)

    def test_gzip_bomb_is_not_inflated(self):
        bomb = b64gz(b'\0' * (50 << 20))     # 50 MiB of zeros, ~50 KiB packed
        with mock.patch.object(configdrive.zlib, 'decompressobj',
                               wraps=configdrive.zlib.decompressobj) as d:
            self.assertRaises(ir_exc.InvalidParameterValue,
                              configdrive.decode, bomb, 1 << 20)
        # one bounded decompress call: at most cap+1 bytes were produced
        self.assertEqual(1, d.call_count)

    def test_garbage(self):
        for bad in ('not base64 at all!', base64.b64encode(b'\x1f\x8bxx').decode()):
            self.assertRaises(ir_exc.InvalidParameterValue,
                              configdrive.decode, bad, 1 << 20)

    def test_raw_iso_only_from_urls(self):
        self.assertEqual(ISO, configdrive.decode(ISO, 1 << 20,
                                                 raw_allowed=True))
        self.assertRaises(ir_exc.InvalidParameterValue, configdrive.decode,
                          ISO, 1 << 20)


class ForNodeTests(base.TestCase):

    def test_none(self):
        node = self.node(driver_internal_info={'dpu_config_drive': {'x': 1}})
        self.assertIsNone(configdrive.for_node(node))
        self.assertNotIn('dpu_config_drive', node.driver_internal_info)

    def test_string(self):
        node = self.node(instance_info={'configdrive': b64gz(ISO)})
        item = configdrive.for_node(node)
        self.assertEqual(hashlib.sha256(ISO).hexdigest(), item['sha256'])
        self.assertEqual(ISO, unpack(item))

    def test_dict_is_built_by_ironic_once(self):
        source = {'user_data': '#cloud-config\n'}
        node = self.node(instance_info={'configdrive': dict(source)})
        with mock.patch.object(manager_utils, 'build_configdrive',
                               autospec=True,
                               return_value=b64gz(ISO)) as build:
            item = configdrive.for_node(node)
            self.assertEqual(ISO, unpack(item))
            # each build differs (ISO time stamps): later pushes name the
            # image the agent already has
            self.assertEqual({'sha256': item['sha256']},
                             configdrive.for_node(node))
            self.assertEqual(1, build.call_count)
            self.assertIn('data', configdrive.for_node(node, fresh=True))
            self.assertEqual(2, build.call_count)
        self.assertEqual(source, node.instance_info['configdrive'])
        self.assertIsNot(node.instance_info['configdrive'],
                         build.call_args.args[1])

    def test_oversized_node_config_drive(self):
        CONF.set_override('config_drive_max_bytes', 4096, group='dpu')
        node = self.node(instance_info={'configdrive': b64gz(ISO)})
        e = self.raises(ir_exc.InvalidParameterValue, configdrive.for_node,
                        node)
        self.assertIn('4096', str(e))

    @mock.patch.object(configdrive.requests, 'get', autospec=True)
    def test_url_fetched_once_per_deploy(self, get):
        url = 'https://swift/v1/c/configdrive-n?temp_url_sig=SECRET'
        get.return_value = FakeResponse(b64gz(ISO).encode())
        node = self.node(instance_info={'configdrive': url})
        item = configdrive.for_node(node)
        self.assertEqual(ISO, unpack(item))
        get.assert_called_once_with(url, stream=True, timeout=60)
        # later pushes: the agent holds the image; no second download
        again = configdrive.for_node(node)
        self.assertEqual({'sha256': item['sha256']}, again)
        self.assertEqual(1, get.call_count)
        # a new URL (rebuild) is fetched
        node.instance_info = {'configdrive': url + '2'}
        get.return_value = FakeResponse(ISO)     # raw ISO from a URL
        self.assertEqual(ISO, unpack(configdrive.for_node(node)))

    @mock.patch.object(configdrive.requests, 'get', autospec=True)
    def test_url_read_is_bounded(self, get):
        CONF.set_override('config_drive_max_bytes', 8192, group='dpu')
        resp = FakeResponse(b'A' * (10 << 20))
        get.return_value = resp
        node = self.node(instance_info={'configdrive': 'http://x/cd?sig=S'})
        e = self.raises(ir_exc.InvalidParameterValue, configdrive.for_node,
                        node)
        self.assertLess(resp.read, 64 << 10)   # stopped early
        self.assertNotIn('sig=S', str(e))      # temp URL secrets stay out
        self.assertIn('8192', str(e))

    @mock.patch.object(configdrive.requests, 'get', autospec=True)
    def test_url_unreachable(self, get):
        get.side_effect = configdrive.requests.ConnectionError('refused')
        node = self.node(instance_info={'configdrive': 'http://x/cd?sig=S'})
        e = self.raises(ir_exc.InvalidParameterValue, configdrive.for_node,
                        node)
        self.assertIn('http://x/cd', str(e))
        self.assertNotIn('sig=S', str(e))


class DesiredConfigDriveTests(base.TestCase):

    def setUp(self):
        super().setUp()
        node = self.node(instance_info={'configdrive': b64gz(ISO)})
        self.task = base.FakeTask(node, [self.port(vif='vif-1')],
                                  [self.target('data', boot_index=-1),
                                   self.target('boot', boot_index=0)])
        self.client = mock.Mock()
        self.client.apply_state.return_value = {'observed': {}}
        # an agent older than API 1.2 (or capped below it): inline data
        self.client.can_send_version.return_value = False

    def test_build_and_push_send_data_record_sha_only(self):
        state = desired.build(self.task)
        sha = hashlib.sha256(ISO).hexdigest()
        self.assertEqual(sha, state['config_drive']['sha256'])
        desired.push(self.task, state, client=self.client)
        sent = self.client.apply_state.call_args.args[1]
        self.assertEqual(ISO, unpack(sent['config_drive']))
        rec = self.task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual({'sha256': sha}, rec['config_drive'])
        self.assertNotIn(state['config_drive']['data'],
                         str(self.task.node.driver_internal_info))

    def test_conflict_retry_records_sha_only(self):
        conflict = exception.DPUAgentError(node='n', method='apply_state',
                                           error='older')
        conflict.remote_class = 'Conflict'
        self.client.apply_state.side_effect = [conflict, {'observed': {}}]
        self.client.get_state.return_value = {'desired': {'generation': 7}}
        desired.push(self.task, desired.build(self.task), client=self.client)
        self.assertIn('data', self.client.apply_state.call_args.args[1][
            'config_drive'])
        rec = self.task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(['sha256'], list(rec['config_drive']))
        self.assertEqual(8, rec['generation'])

    def test_data_disk_has_no_boot_index_and_sorts_last(self):
        state = desired.build(self.task)
        self.assertEqual(['boot', 'data'],
                         [v['volume_id'] for v in state['volumes']])
        self.assertEqual(0, state['volumes'][0]['boot_index'])
        self.assertNotIn('boot_index', state['volumes'][1])

    def test_agent_without_the_image_gets_it_again(self):
        self.task.node.instance_info = {'configdrive': {'user_data': 'x'}}
        lost = exception.DPUAgentError(
            node='n', method='apply_state', error='storage: invalid argument:'
            ' config_drive abc: the agent holds no such image; send it in '
            'config_drive.data')
        self.client.apply_state.side_effect = [{'observed': {}}, lost,
                                               {'observed': {}}]
        with mock.patch.object(manager_utils, 'build_configdrive',
                               autospec=True, return_value=b64gz(ISO)):
            desired.push(self.task, desired.build(self.task),
                         client=self.client)
            desired.push(self.task, desired.build(self.task),
                         client=self.client)
        sent = [c.args[1] for c in self.client.apply_state.call_args_list]
        self.assertIn('data', sent[0]['config_drive'])
        self.assertEqual(['sha256'], list(sent[1]['config_drive']))
        self.assertIn('data', sent[2]['config_drive'])
        self.assertEqual([1, 2, 3], [s['generation'] for s in sent])
