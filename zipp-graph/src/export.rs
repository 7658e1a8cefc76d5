//! The PyTorch Geometric layout: export and weight import (in progress).
