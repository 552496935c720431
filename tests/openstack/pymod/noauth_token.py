"""Paste filters for the noauth test cloud (no Keystone).

filter_factory (nova, after 'noauth2'): nova's NoAuthMiddleware builds a
RequestContext without an auth_token, so nova's calls to glance and cinder on
behalf of the user fail with keystoneauth 'AuthorizationFailure: No valid
authentication is available'. It copies the request's X-Auth-Token
("user:project"), which the noauth glance/cinder accept, into the context.

cinder_filter_factory (cinder, after 'noauth_include_project_id'): a caller
that sent an X-Service-Token (nova does with [service_user]
send_service_user_token) gets the 'service' role, as keystonemiddleware would
give it. Without it cinder's attachment delete asks nova through the service
catalog, which does not exist here (EndpointNotFound, HTTP 500).
"""
import webob.dec
import webob.exc


class InjectToken(object):
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        ctx = req.environ.get('nova.context')
        if ctx is not None and not ctx.auth_token:
            ctx.auth_token = req.headers.get('X-Auth-Token')
        return req.get_response(self.app)


def filter_factory(global_conf, **local_conf):
    return InjectToken


class CinderServiceRoles(object):
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        ctx = req.environ.get('cinder.context')
        if ctx is not None and req.headers.get('X-Service-Token'):
            ctx.service_roles = ['service']
        return req.get_response(self.app)


def cinder_filter_factory(global_conf, **local_conf):
    return CinderServiceRoles


class CinderRequireToken(object):
    """For cinder, before its noauth filter: answer a request without a token
    401, as keystonemiddleware does. Cinder's noauth answers it 204 (a
    legacy auth emulation), which openstacksdk's version discovery of the
    block-storage endpoint (`server add volume`) takes for an empty version
    document and fails; after a 401 keystoneauth tries the unversioned root."""
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        if 'X-Auth-Token' not in req.headers:
            return webob.exc.HTTPUnauthorized()
        return req.get_response(self.app)


def cinder_token_filter_factory(global_conf, **local_conf):
    return CinderRequireToken


class NeutronTokenProject(object):
    """For neutron with auth_strategy=noauth: scope the request to the project
    named by the token "user:project" (X-Auth-Token), with the admin role, as
    keystonemiddleware would for that user. Neutron's own noauth filter puts
    every request into 'fake_project_id', so a port made by `openstack port
    create` would belong to another project than the server's, and Nova would
    refuse it ("Port ... not usable for instance"). Requests without a token
    (Ironic's and Nova's service calls) keep neutron's fake admin project."""
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        token = req.headers.get('X-Auth-Token') or ''
        if ':' in token:
            user, project = token.split(':', 1)
            req.headers['X-User-Id'] = user
            req.headers['X-Project-Id'] = project
            req.headers['X-Roles'] = 'admin'
            from neutron_lib import context   # only inside neutron-server
            req.environ['neutron.context'] = context.Context.from_environ(
                req.environ).elevated()
        return req.get_response(self.app)


def neutron_filter_factory(global_conf, **local_conf):
    return NeutronTokenProject
