/** The image encoder architectures @medsyn/encoder-bundle builds (ViT sizes are its options, not names here). */
export type ImageArchitecture = 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101' | 'vit';
