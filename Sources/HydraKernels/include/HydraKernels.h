#include "hydra_kernels.h"
#include "hydra_resize.h"
#include "hydra_xnn_memory.h"
#include "hydra_heap.h"
