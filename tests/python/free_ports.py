#!/usr/bin/python3
"""Print a base port P such that 127.0.0.1:P..P+SPAN-1 are all free.

Shared by the shell harnesses (tests/ironic, tests/openstack), which lay
their daemons out at fixed offsets from P. Usage: free_ports.py SPAN
"""
import random
import socket
import sys


def free(base, span):
    for p in range(base, base + span):
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def main():
    span = int(sys.argv[1])
    for _ in range(200):
        base = random.randrange(20000, 32000, span)
        if free(base, span):
            print(base)
            return 0
    return 1


if __name__ == '__main__':
    sys.exit(main())
