export * from './image';
export * from './png';
export * from './jpeg';
export * from './dicom';
export * from './decode';
export * from './limits';
export * from './resize';
export * from './augment';
