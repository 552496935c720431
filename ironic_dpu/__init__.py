"""Out-of-tree Ironic (Zed) driver for bare-metal nodes served by a DPU.

The conductor never runs steps on the DPU: it tells the node's
ironic-dpu-agent what the node should have (volumes and VIFs) and the agent
reconciles. See DESIGN.md sections 2 and 6.
"""
