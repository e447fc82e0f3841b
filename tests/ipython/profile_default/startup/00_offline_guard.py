# Installed in every notebook kernel that `make test` starts (IPYTHONDIR=tests/ipython):
# any attempt to reach the network fails loudly. See utils/course/offline.py.
from utils.course.offline import install_network_guard as _install_network_guard

_install_network_guard()
del _install_network_guard
