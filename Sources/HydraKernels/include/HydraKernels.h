#include "hydra_kernels.h"
#include "hydra_resize.h"
