"""Patroni's etcd3 DCS (Debian's patroni 3.0) against one JSON-gateway URL: the calls a Patroni
member makes in its first loops (initialize, touch_member, take and refresh the leader lease,
config and history keys through the watch cache, give up the leader key). Prints one line a
step; the test compares them with the expected lines. Usage: patroni-dcs.py HOST:PORT"""
import logging
import sys
import time

from patroni.dcs.etcd3 import Etcd3

logging.basicConfig(level=logging.ERROR)


def wait_for(probe, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    return probe()


def main(host):
    # use_proxies: stay on the given URL instead of moving to the members' advertised client URLs.
    dcs = Etcd3({'host': host, 'scope': 'gw', 'name': 'pg1', 'ttl': 30, 'loop_wait': 10,
                 'retry_timeout': 10, 'namespace': '/service/', 'use_proxies': True})
    print('prefix', dcs._client.version_prefix)
    print('initialize', dcs.initialize(create_new=True, sysid='6800000000000000001'))
    print('touch_member', dcs.touch_member({'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni', 'state': 'running', 'role': 'master'}))
    print('acquire', dcs.attempt_to_acquire_leader())
    print('acquire again', dcs.attempt_to_acquire_leader())
    cluster = dcs.get_cluster()
    print('cluster', cluster.leader and cluster.leader.name, [m.name for m in cluster.members], cluster.initialize)
    print('update_leader', dcs.update_leader(None))
    print('set_config', dcs.set_config_value('{"ttl":30,"loop_wait":10}'))
    config = wait_for(lambda: dcs.get_cluster().config)
    print('config', config and config.data)
    print('delete_leader', dcs.delete_leader())
    print('leader after delete', wait_for(lambda: dcs.get_cluster().leader is None))
    print('delete_cluster', dcs.delete_cluster())


if __name__ == '__main__':
    main(sys.argv[1])
