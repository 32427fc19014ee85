/* The version every freeway program reports (--version, nodes/ in ZooKeeper, metrics). */
#ifndef FW_VERSION_H
#define FW_VERSION_H

#define FW_VERSION_STRING "0.1.0"

#endif
